namespace PtqTool.Data;

/// <summary>One input file and, for a labelled ImageFolder, its class index; for text samples, the sentence (Path names its file and line).</summary>
public sealed record SampleFile(string Path, int Label = -1, string? Text = null);

/// <summary>
/// Lists the samples under a folder: images (jpg, jpeg, png, bmp, webp, gif), .wav audio, .npy arrays or ONNX TensorProto
/// .pb files, recursively and in ordinal path order so runs are reproducible.
/// </summary>
public static class SampleFolder
{
    public static readonly string[] ImageExtensions = [".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif"];
    public static readonly string[] TensorExtensions = [".npy", ".pb", ".npz"];
    public static readonly string[] AudioExtensions = [".wav"];

    public static bool IsSample(string path)
    {
        string ext = Path.GetExtension(path).ToLowerInvariant();
        return ImageExtensions.Contains(ext) || TensorExtensions.Contains(ext) || AudioExtensions.Contains(ext);
    }

    public static bool IsAudio(string path) => AudioExtensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    private static bool IsTensor(string path) => TensorExtensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>
    /// Every sample file below <paramref name="folder"/>, unlabelled. A folder holding tensor files (.npy, .pb) is read as
    /// tensors only, so the PNG previews `ptq distill` writes beside its .npy samples are not taken for images; else one
    /// holding .wav files is read as audio only (a spectrogram picture beside a clip is not a sample).
    /// </summary>
    /// <param name="namedInputs">
    /// For a model with several inputs: each sample is an .npz keyed by input name, or a folder of .pb TensorProtos (one
    /// per input, ONNX's test_data_set layout), listed as that folder.
    /// </param>
    public static List<SampleFile> List(string folder, bool namedInputs = false)
    {
        CheckFolder(folder);
        if (namedInputs)
        {
            var named = Named(Walk(folder)).Select(f => new SampleFile(f)).ToList();
            if (named.Count == 0)
                throw new PtqException($"{folder}: no .npz samples (keyed by input name) or folders of .pb tensors found; a model with several inputs takes those");
            return named;
        }
        var files = OneKind(Walk(folder).Where(IsSample)).Select(f => new SampleFile(f)).ToList();
        if (files.Count == 0)
            throw new PtqException($"{folder}: no images (.jpg .png .bmp .webp .gif), audio (.wav) or tensors (.npy .pb) found");
        return files;
    }

    /// <summary>
    /// A labelled ImageFolder: one sub-folder per class; sorted (ordinal) sub-folder order is the class index.
    /// Returns the class names too.
    /// </summary>
    public static (List<SampleFile> Files, string[] Classes) ListLabelled(string folder, bool namedInputs = false)
    {
        CheckFolder(folder);
        string[] classes = Directory.GetDirectories(folder).Select(Path.GetFileName).OrderBy(d => d, StringComparer.Ordinal).ToArray()!;
        if (classes.Length == 0)
            throw new PtqException($"{folder}: not a labelled ImageFolder (expected one sub-folder per class)");
        var files = new List<SampleFile>();
        for (int c = 0; c < classes.Length; c++)
        {
            var inClass = Walk(Path.Combine(folder, classes[c]));
            files.AddRange((namedInputs ? Named(inClass) : OneKind(inClass.Where(IsSample))).Select(f => new SampleFile(f, c)));
        }
        if (files.Count == 0)
            throw new PtqException($"{folder}: class folders hold no images");
        return (files, classes);
    }

    /// <summary>Tensors if there are any, else audio if there is any, else images; in ordinal order.</summary>
    private static IEnumerable<string> OneKind(IEnumerable<string> samples)
    {
        var all = samples.ToList();
        Func<string, bool> keep = all.Any(IsTensor) ? IsTensor : all.Any(IsAudio) ? IsAudio : _ => true;
        return all.Where(keep).OrderBy(f => f, StringComparer.Ordinal);
    }

    /// <summary>The .npz files and the folders holding .pb files among <paramref name="files"/>, in ordinal order.</summary>
    private static IEnumerable<string> Named(IEnumerable<string> files)
    {
        var list = files.ToList();
        var npz = list.Where(f => Path.GetExtension(f).Equals(".npz", StringComparison.OrdinalIgnoreCase));
        var pbFolders = list.Where(f => Path.GetExtension(f).Equals(".pb", StringComparison.OrdinalIgnoreCase)).Select(f => Path.GetDirectoryName(f)!).Distinct(StringComparer.Ordinal);
        return npz.Concat(pbFolders).OrderBy(f => f, StringComparer.Ordinal);
    }

    /// <summary>The i-th of n contiguous slices (0-based i), for sharded calibration.</summary>
    public static List<SampleFile> Shard(List<SampleFile> files, int index, int count)
    {
        if (count < 1 || index < 0 || index >= count)
            throw new PtqException($"--shard: {index}/{count} is out of range (expected i/N with 0 <= i < N)");
        int start = (int)((long)files.Count * index / count);
        int end = (int)((long)files.Count * (index + 1) / count);
        return files.GetRange(start, end - start);
    }

    /// <summary>Deepest folder nesting walked; deeper trees are refused rather than walked without end.</summary>
    public const int MaxDepth = 32;

    /// <summary>
    /// Every file below a folder. Linked folders are followed once: a folder already visited (by device and inode, so a
    /// link back up the tree is caught) is skipped, so link loops end.
    /// </summary>
    public static List<string> Walk(string folder)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var files = new List<string>();
        var pending = new Stack<(string Dir, int Depth)>();
        pending.Push((folder, 0));
        while (pending.Count > 0)
        {
            var (dir, depth) = pending.Pop();
            if (!seen.Add(Onnx.FileIdentity.Key(dir))) continue;
            if (depth > MaxDepth) throw new PtqException($"{folder}: folders nest deeper than {MaxDepth} levels");
            try
            {
                foreach (var entry in Directory.EnumerateFileSystemEntries(dir))
                {
                    if (Directory.Exists(entry)) pending.Push((entry, depth + 1));
                    else if (File.Exists(entry)) files.Add(entry);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new PtqException($"{dir}: cannot read folder ({e.Message})", inner: e);
            }
        }
        return files;
    }

    private static void CheckFolder(string folder)
    {
        if (File.Exists(folder))
            throw new PtqException($"{folder}: is a file, expected a folder of samples");
        if (!Directory.Exists(folder))
            throw new PtqException($"{folder}: folder not found");
    }
}
