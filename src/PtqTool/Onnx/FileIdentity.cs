using System.Runtime.InteropServices;

namespace PtqTool.Onnx;

/// <summary>What a path names on disk.</summary>
public enum FileKind { Missing, Regular, Directory, Other }

/// <summary>
/// Which file a path names, by device and inode (so `./m.onnx`, an absolute path, a symlink and a hard link are all seen
/// as the same file), and what kind of file it is. Uses stat(2) on Linux; elsewhere falls back to resolved full paths.
/// </summary>
public static class FileIdentity
{
    [DllImport("libc", EntryPoint = "stat", SetLastError = true)]
    private static extern int Stat([MarshalAs(UnmanagedType.LPUTF8Str)] string path, byte[] buffer);

    private static bool UseStat => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    /// <summary>(st_dev, st_ino, st_mode) of the file a path names (links followed), or null when it does not exist.</summary>
    private static (ulong Dev, ulong Ino, uint Mode)? StatOf(string path)
    {
        if (!UseStat) return null;
        var buffer = new byte[256];
        try
        {
            if (Stat(path, buffer) != 0) return null;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
        // struct stat starts with st_dev, st_ino on both; st_mode follows st_nlink on x86-64 and precedes it on arm64.
        int modeOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 24 : 16;
        return (BitConverter.ToUInt64(buffer, 0), BitConverter.ToUInt64(buffer, 8), BitConverter.ToUInt32(buffer, modeOffset));
    }

    public static FileKind KindOf(string path)
    {
        if (StatOf(path) is { } s)
            return (s.Mode & 0xF000) switch { 0x8000 => FileKind.Regular, 0x4000 => FileKind.Directory, _ => FileKind.Other };
        if (Directory.Exists(path)) return FileKind.Directory;
        if (!File.Exists(path)) return FileKind.Missing;
        return OperatingSystem.IsWindows() || !path.StartsWith("/dev/", StringComparison.Ordinal) ? FileKind.Regular : FileKind.Other;
    }

    /// <summary>Whether two paths name the same existing file or directory, or the same full path when either is missing.</summary>
    public static bool Same(string a, string b)
    {
        if (StatOf(a) is { } x && StatOf(b) is { } y) return x.Dev == y.Dev && x.Ino == y.Ino;
        return string.Equals(Canonical(a), Canonical(b), OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>A key equal for two paths exactly when they name the same file: "dev:ino" where stat works, else the resolved full path.</summary>
    public static string Key(string path) => StatOf(path) is { } s ? $"{s.Dev}:{s.Ino}" : Canonical(path);

    /// <summary>The full path with symlinks of existing parts resolved.</summary>
    public static string Canonical(string path)
    {
        string full = Path.GetFullPath(path);
        try
        {
            var info = new FileInfo(full);
            if (info.Exists && info.LinkTarget is not null && info.ResolveLinkTarget(true) is { } target) return target.FullName;
            string? dir = Path.GetDirectoryName(full);
            if (dir is not null && Directory.Exists(dir) && new DirectoryInfo(dir).ResolveLinkTarget(true) is { } d)
                return Path.Combine(d.FullName, Path.GetFileName(full));
        }
        catch (IOException) { }
        return full;
    }
}
