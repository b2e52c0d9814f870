namespace PtqTool.Onnx;

/// <summary>
/// Writes files through a temporary sibling and a rename, so a failure never leaves a half-written output. Inside a
/// <see cref="Batch"/>, every file is staged first and all are renamed together at <see cref="Batch.Commit"/>; a batch
/// disposed without commit (an error, a failed check) leaves nothing. Temporary files of an interrupted run (SIGINT) are
/// deleted by <see cref="DeleteStaged"/>.
/// </summary>
public static class AtomicFile
{
    private static readonly HashSet<string> Staged = [];
    private static readonly Lock StagedLock = new();
    [ThreadStatic] private static Batch? _current;

    /// <summary>Files staged together, renamed into place at <see cref="Commit"/>, deleted at <see cref="Dispose"/> if not committed.</summary>
    public sealed class Batch : IDisposable
    {
        private readonly List<(string Temp, string Final)> _files = [];
        private readonly Batch? _outer;
        private bool _done;

        internal Batch(Batch? outer) => _outer = outer;

        internal void Add(string temp, string final) => _files.Add((temp, final));

        public void Commit()
        {
            foreach (var (temp, final) in _files) Rename(temp, final);
            _files.Clear();
            _done = true;
        }

        public void Dispose()
        {
            if (!_done) foreach (var (temp, _) in _files) Delete(temp);
            _current = _outer;
        }
    }

    /// <summary>Starts staging: writes until <see cref="Batch.Commit"/> go to temporary files only.</summary>
    public static Batch Begin() => _current = new Batch(_current);

    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        CheckReplaceable(full);
        try
        {
            Directory.CreateDirectory(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PtqException($"{path}: cannot create its folder ({e.Message})", inner: e);
        }
        // A short temporary name: "<name>.<pid>.tmp" of a long output name would pass the 255-byte limit.
        string temp = Path.Combine(dir, $".ptq-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}.tmp");
        lock (StagedLock) Staged.Add(temp);
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(stream);
            }
            if (_current is { } batch) batch.Add(temp, full);
            else Rename(temp, full);
        }
        catch (Exception e)
        {
            Delete(temp);
            if (e is IOException or UnauthorizedAccessException)
                throw new PtqException($"{path}: cannot write ({e.Message})", inner: e);
            throw;
        }
    }

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        byte[] copy = bytes.ToArray();
        Write(path, s => s.Write(copy));
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, s => { using var w = new StreamWriter(s, new System.Text.UTF8Encoding(false)); w.Write(text); });

    /// <summary>Deletes every temporary file not yet renamed into place (called on SIGINT).</summary>
    public static void DeleteStaged()
    {
        string[] all;
        lock (StagedLock) all = [.. Staged];
        foreach (var t in all) Delete(t);
    }

    /// <summary>Only a regular file (or nothing) may be replaced: never a directory, a device or a pipe.</summary>
    public static void CheckReplaceable(string path)
    {
        var kind = FileIdentity.KindOf(path);
        if (kind is FileKind.Directory) throw new PtqException($"{path}: is a directory, not a file to write");
        if (kind is FileKind.Other) throw new PtqException($"{path}: is not a regular file (a device, pipe or socket); refusing to replace it");
    }

    private static void Rename(string temp, string final)
    {
        CheckReplaceable(final);
        try
        {
            File.Move(temp, final, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Delete(temp);
            throw new PtqException($"{final}: cannot write ({e.Message})", inner: e);
        }
        lock (StagedLock) Staged.Remove(temp);
    }

    private static void Delete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        lock (StagedLock) Staged.Remove(path);
    }
}
