using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>How an <see cref="OrtRunner"/> session is created.</summary>
public sealed record RunnerOptions
{
    /// <summary>Intra-op threads; 0 lets ONNX Runtime choose.</summary>
    public int Threads { get; init; }
    public GraphOptimizationLevel Optimization { get; init; } = GraphOptimizationLevel.ORT_ENABLE_ALL;
    /// <summary>When set, ONNX Runtime writes the graph it optimized here (used to check QDQ fusion).</summary>
    public string? OptimizedModelPath { get; init; }
    /// <summary>When set, ONNX Runtime profiles every run into a JSON trace with this path prefix (<see cref="OrtRunner.EndProfiling"/>).</summary>
    public string? ProfilePrefix { get; init; }
    /// <summary>
    /// Let the intra-op threads spin after a run (ONNX Runtime's own default, for back-to-back runs of one session).
    /// Off by default here: ptq mostly alternates sessions (FP32 and quantized, exact and fused, gradient and forward),
    /// and a session's idle threads spinning for ~20 ms after its run take the cores from the next session's run
    /// (AdaRound on the sample ResNet: 15.6 s spinning, 12.0 s not; the evaluation pass twice as long). On for latency
    /// timing, which measures sessions as ONNX Runtime runs them by default.
    /// </summary>
    public bool Spinning { get; init; }
    /// <summary>
    /// ONNX Runtime's CPU memory arena keeps the largest footprint a session ever had; the per-layer error sessions run
    /// without it so their memory goes back after each run. (Calibration and the unfused QDQ session keep it: measured,
    /// without it the changing output sets fragment the heap and the peak grew.)
    /// </summary>
    public bool MemoryArena { get; init; } = true;
}

/// <summary>
/// A thin wrapper over an ONNX Runtime session: float inputs and outputs as <see cref="FloatTensor"/>,
/// any batch size (models with a fixed batch dimension are run in chunks of that size), disposed with the runner.
/// </summary>
public sealed class OrtRunner : IDisposable
{
    private readonly InferenceSession _session;
    private readonly SessionOptions _options;

    public IReadOnlyList<string> InputNames { get; }
    public IReadOnlyList<string> OutputNames { get; }

    private OrtRunner(InferenceSession session, SessionOptions options)
    {
        _session = session;
        _options = options;
        InputNames = session.InputMetadata.Keys.ToList();
        OutputNames = session.OutputMetadata.Keys.ToList();
    }

    public static OrtRunner FromModel(ModelProto model, RunnerOptions? options = null, string nameForErrors = "model") =>
        Create(o => new InferenceSession(model.ToByteArray(), o), options, nameForErrors);

    public static OrtRunner FromFile(string path, RunnerOptions? options = null)
    {
        if (!File.Exists(path)) throw new PtqException($"{path}: file not found");
        return Create(o => new InferenceSession(path, o), options, path);
    }

    private static OrtRunner Create(Func<SessionOptions, InferenceSession> open, RunnerOptions? options, string nameForErrors)
    {
        options ??= new RunnerOptions();
        var so = new SessionOptions { GraphOptimizationLevel = options.Optimization, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, EnableCpuMemArena = options.MemoryArena };
        if (options.Threads > 0)
        {
            so.IntraOpNumThreads = options.Threads;
            so.InterOpNumThreads = 1;
        }
        if (options.OptimizedModelPath is not null) so.OptimizedModelFilePath = options.OptimizedModelPath;
        if (!options.Spinning) so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        if (options.ProfilePrefix is not null)
        {
            so.EnableProfiling = true;
            so.ProfileOutputPathPrefix = options.ProfilePrefix;
        }
        try
        {
            return new OrtRunner(open(so), so);
        }
        catch (OnnxRuntimeException e)
        {
            so.Dispose();
            throw new PtqException($"{nameForErrors}: ONNX Runtime cannot load the model ({FirstLine(e.Message)})", inner: e);
        }
    }

    /// <summary>Stops profiling and returns the trace file ONNX Runtime wrote.</summary>
    public string EndProfiling() => _session.EndProfiling();

    /// <summary>Input dimensions as the model declares them; -1 marks a symbolic dimension.</summary>
    public int[] InputShape(string name) => _session.InputMetadata[name].Dimensions;

    public int[] OutputShape(string name) => _session.OutputMetadata[name].Dimensions;

    /// <summary>The first input's fixed batch size, or -1 when the batch dimension is symbolic.</summary>
    public int FixedBatch => InputShape(InputNames[0]) is { Length: > 0 } s && s[0] > 0 ? s[0] : -1;

    /// <summary>The element type the model declares for input <paramref name="name"/>.</summary>
    public TensorElementType InputElementType(string name) => _session.InputMetadata[name].ElementDataType;

    /// <summary>
    /// Runs a batch. When the model's first input has a fixed batch dimension different from the batch given,
    /// the batch is run in chunks of the fixed size and the outputs are joined.
    /// </summary>
    public Dictionary<string, FloatTensor> Run(ModelFeed inputs, IReadOnlyList<string>? outputs = null)
    {
        outputs ??= OutputNames;
        int fixedBatch = FixedBatch, batch = inputs.BatchOf(InputNames[0]);
        if (fixedBatch < 0 || batch == fixedBatch)
            return RunOnce(inputs, outputs);
        if (batch % fixedBatch != 0)
            throw new PtqException($"model has a fixed batch of {fixedBatch}; a batch of {batch} cannot be split into it");
        var parts = new List<Dictionary<string, FloatTensor>>();
        for (int start = 0; start < batch; start += fixedBatch)
            parts.Add(RunOnce(inputs.Slice(start, fixedBatch), outputs));
        return outputs.ToDictionary(o => o, o => parts[0][o].Shape.Length > 0
            ? FloatTensor.Concat(parts.Select(p => p[o]).ToList())
            : throw new PtqException($"output '{o}' has no batch axis, so a model with a fixed batch of {fixedBatch} cannot be run on {batch} samples in chunks"));
    }

    /// <summary>Runs a batch fed by input name (graphs ptq builds: gradient and block graphs, float inputs).</summary>
    public Dictionary<string, FloatTensor> Run(IReadOnlyDictionary<string, FloatTensor> inputs, IReadOnlyList<string>? outputs = null) =>
        Run(new ModelFeed(inputs.Keys.ToList(), inputs.Values.ToList(), sameBatch: false), outputs);

    /// <summary>Runs one batch and drops every output in ONNX Runtime's own buffers, of any type (latency timing).</summary>
    public void RunAndDrop(ModelFeed input)
    {
        if (FixedBatch > 0 && input.Batch != FixedBatch)
        {
            Run(input);
            return;
        }
        var (names, values) = FeedValues(input, copy: false);
        using var runOptions = new RunOptions();
        try
        {
            using var results = _session.Run(runOptions, names, values, OutputNames);
        }
        catch (OnnxRuntimeException e)
        {
            throw new PtqException($"ONNX Runtime failed to run the model: {FirstLine(e.Message)}", inner: e);
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>
    /// Runs one batch and hands each float output to <paramref name="visit"/> as a span over ONNX Runtime's own buffer,
    /// released right after: nothing is copied, so streaming consumers (calibration) allocate nothing per batch.
    /// </summary>
    public void Visit(ModelFeed input, IReadOnlyList<string> outputs, Action<string, ReadOnlySpan<float>, int[]> visit)
    {
        using var held = RunHeld(input, outputs);
        held.Visit(visit);
    }

    /// <summary>
    /// Runs one batch and keeps the float outputs in ONNX Runtime's own buffers until the returned object is disposed, so
    /// that they can be read after the run returns, on any thread (calibration bins them while other runs go on).
    /// </summary>
    public HeldOutputs RunHeld(ModelFeed input, IReadOnlyList<string> outputs)
    {
        if (FixedBatch > 0 && input.Batch != FixedBatch) return new HeldOutputs(outputs, [], null, Run(input, outputs));
        // The feed is a native copy owned by the held outputs: ONNX Runtime may return the feed itself (a graph input
        // exposed as an output) or a view of it (Reshape), and a managed array would be unpinned, movable and reusable
        // by the caller long before the outputs are read.
        var (names, values) = FeedValues(input, copy: true);
        try
        {
            using var runOptions = new RunOptions();
            return new HeldOutputs(outputs, values, _session.Run(runOptions, names, values, outputs), null);
        }
        catch (Exception e)
        {
            foreach (var v in values) v.Dispose();
            if (e is OnnxRuntimeException ort) throw new PtqException($"ONNX Runtime failed to run the model: {FirstLine(ort.Message)}", inner: ort);
            throw;
        }
    }

    /// <summary>
    /// The feed as ONNX Runtime values of each input's declared element type. Float inputs are fed from the managed
    /// array itself unless <paramref name="copy"/>; other types (int64 token ids, bool masks, float16) are converted
    /// into native buffers.
    /// </summary>
    private (List<string> Names, List<OrtValue> Values) FeedValues(ModelFeed feed, bool copy)
    {
        var names = new List<string>(feed.Tensors.Count);
        var values = new List<OrtValue>(feed.Tensors.Count);
        try
        {
            for (int i = 0; i < feed.Tensors.Count; i++)
            {
                string name = feed.Names[i] ?? (InputNames.Count == 1 ? InputNames[0]
                    : throw new PtqException($"model has {InputNames.Count} inputs ({string.Join(", ", InputNames)}); a batch must name the input of each tensor"));
                if (!_session.InputMetadata.TryGetValue(name, out var meta))
                    throw new PtqException($"model has no input '{name}' (its inputs: {string.Join(", ", InputNames)})");
                names.Add(name);
                values.Add(InputValues.Create(meta.ElementDataType, feed.Tensors[i], copy, name));
            }
            return (names, values);
        }
        catch
        {
            foreach (var v in values) v.Dispose();
            throw;
        }
    }

    /// <summary>Outputs of one run, alive until disposed (<see cref="RunHeld"/>).</summary>
    public sealed class HeldOutputs(IReadOnlyList<string> names, IReadOnlyList<OrtValue> feed, IDisposableReadOnlyCollection<OrtValue>? values, Dictionary<string, FloatTensor>? copies) : IDisposable
    {
        /// <summary>How many outputs <see cref="Visit(int, Action{string, ReadOnlySpan{float}, int[]})"/> can hand out.</summary>
        public int Count => names.Count;

        /// <summary>Hands each output to <paramref name="visit"/> as a span over its buffer.</summary>
        public void Visit(Action<string, ReadOnlySpan<float>, int[]> visit)
        {
            for (int i = 0; i < names.Count; i++) Visit(i, visit);
        }

        /// <summary>Hands output <paramref name="index"/> to <paramref name="visit"/>; different outputs may be visited on different threads at once.</summary>
        public void Visit(int index, Action<string, ReadOnlySpan<float>, int[]> visit)
        {
            string name = names[index];
            if (copies is not null)
            {
                var t = copies[name];
                visit(name, t.Data, t.Shape);
                return;
            }
            var info = values![index].GetTensorTypeAndShape();
            if (info.ElementDataType != TensorElementType.Float)
                throw new PtqException($"output '{name}' is {info.ElementDataType}, not float");
            visit(name, values[index].GetTensorDataAsSpan<float>(), info.Shape.Select(d => checked((int)d)).ToArray());
        }

        public void Dispose()
        {
            values?.Dispose();
            foreach (var v in feed) v.Dispose();
        }
    }

    private Dictionary<string, FloatTensor> RunOnce(ModelFeed inputs, IReadOnlyList<string> outputs)
    {
        var (names, values) = FeedValues(inputs, copy: false);
        try
        {
            using var runOptions = new RunOptions();
            using var results = _session.Run(runOptions, names, values, outputs);
            var dict = new Dictionary<string, FloatTensor>(outputs.Count);
            for (int i = 0; i < outputs.Count; i++) dict[outputs[i]] = ToFloatTensor(results[i]);
            return dict;
        }
        catch (OnnxRuntimeException e)
        {
            throw new PtqException($"ONNX Runtime failed to run the model: {FirstLine(e.Message)}", inner: e);
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    private static FloatTensor ToFloatTensor(OrtValue value)
    {
        var info = value.GetTensorTypeAndShape();
        int[] shape = info.Shape.Select(d => checked((int)d)).ToArray();
        float[] data;
        switch (info.ElementDataType)
        {
            case TensorElementType.Float: data = value.GetTensorDataAsSpan<float>().ToArray(); break;
            case TensorElementType.Int64: { var s = value.GetTensorDataAsSpan<long>(); data = new float[s.Length]; for (int i = 0; i < s.Length; i++) data[i] = s[i]; break; }
            case TensorElementType.Int32: { var s = value.GetTensorDataAsSpan<int>(); data = new float[s.Length]; for (int i = 0; i < s.Length; i++) data[i] = s[i]; break; }
            case TensorElementType.Int8: { var s = value.GetTensorDataAsSpan<sbyte>(); data = new float[s.Length]; for (int i = 0; i < s.Length; i++) data[i] = s[i]; break; }
            case TensorElementType.UInt8: { var s = value.GetTensorDataAsSpan<byte>(); data = new float[s.Length]; for (int i = 0; i < s.Length; i++) data[i] = s[i]; break; }
            default: throw new PtqException($"output of element type {info.ElementDataType} is not supported");
        }
        return new FloatTensor(data, shape);
    }

    private static string FirstLine(string s)
    {
        int i = s.IndexOf('\n');
        return (i < 0 ? s : s[..i]).Trim();
    }

    public void Dispose()
    {
        _session.Dispose();
        _options.Dispose();
    }
}
