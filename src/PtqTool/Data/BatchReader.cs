using PtqTool.Onnx;

namespace PtqTool.Data;

/// <summary>A batch of preprocessed samples with their labels (-1 when unlabelled) and source files.</summary>
public sealed record SampleBatch(ModelFeed Input, int[] Labels, string[] Files);

/// <summary>
/// Turns sample files into batches of model input. For a model with one float input, images are decoded and
/// preprocessed and .npy and .pb tensors taken as they are (one sample, or a leading batch dimension of several). For
/// a model with several inputs (or one that is not float), each sample is an .npz keyed by input name or a folder of
/// .pb TensorProtos, checked against the model's inputs; samples whose dynamic dimensions differ (sequence length) are
/// batched with their equals, never padded. For a model whose one input takes raw audio, .wav files are cut into
/// windows (<see cref="AudioInput"/>) and batched the same way. A file that fails to decode is skipped and counted, or stops the run when
/// <see cref="Strict"/> is set.
/// </summary>
public sealed class BatchReader
{
    private readonly IReadOnlyList<SampleFile> _files;
    private readonly Preprocessing _preprocessing;
    private readonly int[] _sampleShape;
    private readonly IReadOnlyList<InputSpec>? _inputs;
    private readonly AudioInput? _audio;
    private readonly int _batch;

    /// <summary>Most batches of distinct shapes held at once; past it the fullest is handed out part-full (bounded memory).</summary>
    public const int MaxOpenShapes = 16;

    /// <summary>Largest batch of input, in floats (1 GiB).</summary>
    public const long MaxBatchFloats = 1L << 28;

    public bool Strict { get; set; }
    /// <summary>Tokenizes text samples (<see cref="SampleFile.Text"/>) into the model's inputs.</summary>
    public TextEncoder? Text { get; set; }
    public int Skipped { get; private set; }
    public List<string> Warnings { get; } = [];
    /// <summary>What the reader did to the data that the user should know (audio tails dropped); filled once reading ends.</summary>
    public List<string> Notes { get; } = [];
    public int Total => _files.Count;

    /// <param name="sampleShape">The shape of one sample as the model takes it (the input shape less the batch dimension).</param>
    public BatchReader(IReadOnlyList<SampleFile> files, Preprocessing preprocessing, int[] sampleShape, int batch)
    {
        if (batch < 1) throw new PtqException($"--batch: {batch} must be at least 1");
        long floats = sampleShape.All(d => d > 0) ? (long)batch * FloatTensor.Count(sampleShape) : 0;
        if (floats > MaxBatchFloats)
            throw new PtqException($"--batch: {batch} samples of [{string.Join(", ", sampleShape)}] are {floats * 4 / (1 << 20)} MiB of input per batch (at most {MaxBatchFloats * 4 / (1 << 20)} MiB); use a smaller --batch");
        _files = files;
        _preprocessing = preprocessing;
        _sampleShape = sampleShape;
        _batch = batch;
    }

    /// <summary>A reader of named multi-input samples (.npz, .pb folders) for a model with these inputs.</summary>
    public BatchReader(IReadOnlyList<SampleFile> files, IReadOnlyList<InputSpec> inputs, int batch) : this(files, inputs, null, batch) { }

    /// <summary>A reader of .wav files for a model whose one input takes raw audio.</summary>
    public BatchReader(IReadOnlyList<SampleFile> files, AudioInput audio, int batch) : this(files, null, audio, batch) { }

    /// <summary>The bucketing readers: feeds made per file (named samples, audio) and batched with their equals in shape.</summary>
    private BatchReader(IReadOnlyList<SampleFile> files, IReadOnlyList<InputSpec>? inputs, AudioInput? audio, int batch)
    {
        if (batch < 1) throw new PtqException($"--batch: {batch} must be at least 1");
        _files = files;
        _inputs = inputs;
        _audio = audio;
        _preprocessing = new Preprocessing();
        _sampleShape = [];
        _batch = batch;
    }

    /// <param name="onFile">Called after each file with the number of files read so far.</param>
    public IEnumerable<SampleBatch> Read(Action<int>? onFile = null) =>
        _audio is not null ? ReadBucketed(AudioFeed, onFile)
        : _inputs is not null ? ReadBucketed(NamedFeed, onFile)
        : ReadSingle(onFile);

    private ModelFeed NamedFeed(SampleFile file) => file.Text is string text
        ? (Text ?? throw new PtqException($"{file.Path}: a text sample, but no tokenizer (--vocab) was given")).Encode(text)
        : NamedInputs.Read(file.Path, _inputs!);

    /// <summary>A .wav file's windows; null when it does not decode and the run is not strict (skipped and counted).</summary>
    private ModelFeed? AudioFeed(SampleFile file)
    {
        WavAudio audio;
        try
        {
            audio = WavReader.Read(file.Path);
        }
        catch (PtqException e) when (!Strict)
        {
            Skipped++;
            Warnings.Add(e.Message);
            return null;
        }
        return _audio!.Feed(audio, file.Path);
    }

    /// <summary>One open batch of samples sharing their per-input shapes.</summary>
    private sealed class Bucket
    {
        public List<ModelFeed> Feeds { get; } = [];
        public List<int> Labels { get; } = [];
        public List<string> Files { get; } = [];
        public int Count => Labels.Count;
    }

    /// <summary>Feeds batched with their equals in shape (sequence or clip length), at most <see cref="MaxOpenShapes"/> open at once.</summary>
    private IEnumerable<SampleBatch> ReadBucketed(Func<SampleFile, ModelFeed?> feedOf, Action<int>? onFile)
    {
        var open = new Dictionary<string, Bucket>(StringComparer.Ordinal);
        var order = new List<string>();
        int done = 0;
        foreach (var file in _files)
        {
            var feed = feedOf(file);
            if (feed is null)
            {
                onFile?.Invoke(++done);
                continue;
            }
            string key = feed.ShapeKey;
            if (!open.TryGetValue(key, out var bucket))
            {
                if (open.Count == MaxOpenShapes)
                {
                    string fullest = order.MaxBy(k => open[k].Count)!;
                    foreach (var b in Drain(open[fullest], all: true)) yield return b;
                    open.Remove(fullest);
                    order.Remove(fullest);
                }
                open[key] = bucket = new Bucket();
                order.Add(key);
            }
            bucket.Feeds.Add(feed);
            for (int i = 0; i < feed.Batch; i++) { bucket.Labels.Add(file.Label); bucket.Files.Add(file.Path); }
            foreach (var b in Drain(bucket, all: false)) yield return b;
            onFile?.Invoke(++done);
        }
        foreach (var key in order)
            foreach (var b in Drain(open[key], all: true)) yield return b;
        if (_audio?.DropNote() is string note) Notes.Add(note);
    }

    /// <summary>Hands out the bucket's full batches (and with <paramref name="all"/> its remainder), keeping the rest.</summary>
    private IEnumerable<SampleBatch> Drain(Bucket bucket, bool all)
    {
        if (bucket.Count < _batch && !(all && bucket.Count > 0)) yield break;
        var joined = ModelFeed.Concat(bucket.Feeds);
        int taken = all ? joined.Batch : joined.Batch / _batch * _batch;
        for (int start = 0; start < taken; start += _batch)
        {
            int n = Math.Min(_batch, taken - start);
            yield return new SampleBatch(n == joined.Batch ? joined : joined.Slice(start, n), bucket.Labels.GetRange(start, n).ToArray(), bucket.Files.GetRange(start, n).ToArray());
        }
        bucket.Feeds.Clear();
        if (taken < joined.Batch) bucket.Feeds.Add(joined.Slice(taken, joined.Batch - taken));
        bucket.Labels.RemoveRange(0, taken);
        bucket.Files.RemoveRange(0, taken);
    }

    private IEnumerable<SampleBatch> ReadSingle(Action<int>? onFile)
    {
        if (_sampleShape.Any(d => d <= 0) && _files.Count > 0)
            throw new PtqException($"{_files[0].Path}: the model's input takes samples of a symbolic length [{string.Join(", ", _sampleShape.Select(d => d > 0 ? d.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?"))}]; give raw audio as .wav files");
        int per = FloatTensor.Count(_sampleShape);
        var data = new List<float>(per * _batch);
        var labels = new List<int>(_batch);
        var names = new List<string>(_batch);
        int done = 0;
        foreach (var file in _files)
        {
            float[][] samples;
            try
            {
                samples = Load(file.Path, per);
            }
            catch (PtqException e) when (!Strict && SampleFolder.ImageExtensions.Contains(Path.GetExtension(file.Path).ToLowerInvariant())
                                          && !e.Message.Contains("the model takes", StringComparison.Ordinal))
            {
                Skipped++;
                Warnings.Add(e.Message);
                onFile?.Invoke(++done);
                continue;
            }
            foreach (var s in samples)
            {
                data.AddRange(s);
                labels.Add(file.Label);
                names.Add(file.Path);
                if (labels.Count == _batch)
                {
                    yield return Make(data, labels, names);
                    data.Clear(); labels.Clear(); names.Clear();
                }
            }
            onFile?.Invoke(++done);
        }
        if (labels.Count > 0) yield return Make(data, labels, names);
    }

    private SampleBatch Make(List<float> data, List<int> labels, List<string> names) =>
        new(new FloatTensor(data.ToArray(), [labels.Count, .. _sampleShape]), labels.ToArray(), names.ToArray());

    private float[][] Load(string path, int per)
    {
        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is ".npy" or ".pb" or ".npz")
        {
            var (values, shape) = ext switch
            {
                ".npy" => NpyReader.Read(path),
                ".npz" => NpzReader.Read(path) is { Count: 1 } one ? (one.Values.First().Data, one.Values.First().Shape)
                    : throw new PtqException($"{path}: holds several arrays, but the model has one input"),
                _ => ReadTensorProto(path),
            };
            if (values.Length % per != 0 || !ShapeFits(shape))
                throw new PtqException($"{path}: tensor shape [{string.Join(',', shape)}] does not fit the model's sample shape [{string.Join(',', _sampleShape)}]");
            return Enumerable.Range(0, values.Length / per).Select(i => values.AsSpan(i * per, per).ToArray()).ToArray();
        }
        var sample = new float[per];
        if (per != FloatTensor.Count(_preprocessing.SampleShape))
            throw new PtqException($"{path}: preprocessing gives [{string.Join(',', _preprocessing.SampleShape)}] but the model takes [{string.Join(',', _sampleShape)}] per sample (check --size, --channels, --layout)");
        ImageDecoder.Decode(path, _preprocessing, sample);
        return [sample];
    }

    private bool ShapeFits(int[] shape)
    {
        if (shape.SequenceEqual(_sampleShape)) return true;
        return shape.Length == _sampleShape.Length + 1 && shape.AsSpan(1).SequenceEqual(_sampleShape);
    }

    private static (float[], int[]) ReadTensorProto(string path)
    {
        try
        {
            var t = Onnx.Proto.TensorProto.Parser.ParseFrom(File.ReadAllBytes(path));
            return (TensorData.ToFloats(t, Path.GetDirectoryName(path)), TensorData.Shape(t));
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e)
        {
            throw new PtqException($"{path}: not an ONNX TensorProto ({e.Message})", inner: e);
        }
    }
}
