using PtqTool.Onnx;

namespace PtqTool.Pipeline;

/// <summary>
/// Checks every input and output path of a command before any work: inputs exist and can be read; outputs are
/// distinct from each other and from every input (by device and inode, so other spellings and links of the same file
/// are caught), are regular files or absent, fit the file-name limit, and their folder can be written.
/// </summary>
public sealed class IoCheck
{
    private readonly List<(string Path, string Role)> _files = [];
    private readonly List<(string Path, string Role)> _folders = [];
    private readonly List<(string Path, string Role)> _outputs = [];

    /// <summary>An input file; <paramref name="optional"/> ones are only checked against outputs when present.</summary>
    public IoCheck Input(string? path, string role, bool optional = false)
    {
        if (path is null) return this;
        if (!optional || File.Exists(path)) _files.Add((path, role));
        return this;
    }

    public IoCheck InputFolder(string? path, string role)
    {
        if (path is not null) _folders.Add((path, role));
        return this;
    }

    public IoCheck Output(string? path, string role)
    {
        if (path is not null) _outputs.Add((path, role));
        return this;
    }

    public void Verify()
    {
        foreach (var (path, role) in _files) CheckReadable(path, role);
        foreach (var (path, role) in _folders) CheckFolder(path, role);
        for (int i = 0; i < _outputs.Count; i++)
        {
            var (path, role) = _outputs[i];
            CheckName(path, role);
            AtomicFile.CheckReplaceable(path);
            foreach (var (input, inputRole) in _files)
                if (FileIdentity.Same(path, input))
                    throw new PtqException($"{path}: {role} would overwrite the {inputRole} ({input}); choose another output path");
            foreach (var (folder, folderRole) in _folders)
                if (FileIdentity.Same(path, folder))
                    throw new PtqException($"{path}: {role} is the {folderRole}; choose a file path");
            for (int j = 0; j < i; j++)
                if (FileIdentity.Same(path, _outputs[j].Path))
                    throw new PtqException($"{path}: {role} and {_outputs[j].Role} are the same file; give them different paths");
            CheckWritableFolder(path, role);
        }
    }

    private static void CheckReadable(string path, string role)
    {
        switch (FileIdentity.KindOf(path))
        {
            case FileKind.Missing: throw new PtqException($"{path}: file not found ({role})");
            case FileKind.Directory: throw new PtqException($"{path}: is a folder, expected a file ({role})");
        }
        try
        {
            using var _ = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PtqException($"{path}: cannot read the {role} ({e.Message})", inner: e);
        }
    }

    private static void CheckFolder(string path, string role)
    {
        switch (FileIdentity.KindOf(path))
        {
            case FileKind.Missing: throw new PtqException($"{path}: folder not found ({role})");
            case FileKind.Directory: break;
            default: throw new PtqException($"{path}: is a file, expected a folder ({role})");
        }
        try
        {
            using var e = Directory.EnumerateFileSystemEntries(path).GetEnumerator();
            e.MoveNext();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PtqException($"{path}: cannot read the {role} ({e.Message})", inner: e);
        }
    }

    private static void CheckName(string path, string role)
    {
        string name = Path.GetFileName(path);
        if (name.Length == 0) throw new PtqException($"{path}: {role} names a folder, not a file");
        if (System.Text.Encoding.UTF8.GetByteCount(name) > 255) throw new PtqException($"{path}: {role} file name is longer than 255 bytes");
    }

    /// <summary>The output's folder (or the nearest existing ancestor, where ptq would create it) takes a new file.</summary>
    private static void CheckWritableFolder(string path, string role)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        while (dir is not null && !Directory.Exists(dir))
        {
            if (File.Exists(dir)) throw new PtqException($"{path}: cannot write the {role}: {dir} is a file, not a folder");
            dir = Path.GetDirectoryName(dir);
        }
        if (dir is null) throw new PtqException($"{path}: cannot write the {role}: no folder to write it in");
        string probe = Path.Combine(dir, $".ptq-probe-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PtqException($"{path}: cannot write the {role} in {dir} ({e.Message})", inner: e);
        }
    }
}
