using PtqTool.Onnx;

namespace PtqTool.Data;

/// <summary>A batch of preprocessed samples with their labels (-1 when unlabelled) and source files.</summary>
public sealed record SampleBatch(FloatTensor Input, int[] Labels, string[] Files);

/// <summary>
/// Turns sample files into batches of model input. Images are decoded and preprocessed; .npy and .pb tensors are
/// taken as they are (one sample, or a leading batch dimension of several). A file that fails to decode is skipped
/// and counted, or stops the run when <see cref="Strict"/> is set.
/// </summary>
public sealed class BatchReader
{
    private readonly IReadOnlyList<SampleFile> _files;
    private readonly Preprocessing _preprocessing;
    private readonly int[] _sampleShape;
    private readonly int _batch;

    /// <summary>Largest batch of input, in floats (1 GiB).</summary>
    public const long MaxBatchFloats = 1L << 28;

    public bool Strict { get; init; }
    public int Skipped { get; private set; }
    public List<string> Warnings { get; } = [];
    public int Total => _files.Count;

    /// <param name="sampleShape">The shape of one sample as the model takes it (the input shape less the batch dimension).</param>
    public BatchReader(IReadOnlyList<SampleFile> files, Preprocessing preprocessing, int[] sampleShape, int batch)
    {
        if (batch < 1) throw new PtqException($"--batch: {batch} must be at least 1");
        long floats = (long)batch * FloatTensor.Count(sampleShape);
        if (floats > MaxBatchFloats)
            throw new PtqException($"--batch: {batch} samples of [{string.Join(", ", sampleShape)}] are {floats * 4 / (1 << 20)} MiB of input per batch (at most {MaxBatchFloats * 4 / (1 << 20)} MiB); use a smaller --batch");
        _files = files;
        _preprocessing = preprocessing;
        _sampleShape = sampleShape;
        _batch = batch;
    }

    /// <param name="onFile">Called after each file with the number of files read so far.</param>
    public IEnumerable<SampleBatch> Read(Action<int>? onFile = null)
    {
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
        if (ext is ".npy" or ".pb")
        {
            var (values, shape) = ext == ".npy" ? NpyReader.Read(path) : ReadTensorProto(path);
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
