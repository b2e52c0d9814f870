using PtqTool.Calibration;
using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Rewrite;
using PtqTool.Rewrite.Handlers;

namespace PtqTool.Pipeline;

/// <summary>
/// A model made ready for calibration and rewriting: the original (the FP32 reference), a copy with BatchNormalization
/// folded, the rewrite plan over that copy, the input's preprocessing, and the model file's digest (stats files carry it).
/// </summary>
public sealed record PreparedModel
{
    public required string Path { get; init; }
    public required OnnxGraph Original { get; init; }
    /// <summary>The original upgraded to opset 13 and normalized (<see cref="GraphNormalizer"/>), external data inlined: what is folded, planned and distilled.</summary>
    public required OnnxGraph Normalized { get; init; }
    public required OpsetUpgradeSummary Upgrade { get; init; }
    public required NormalizationSummary Normalization { get; init; }
    public required OnnxGraph Folded { get; init; }
    public required int FoldedBatchNorms { get; init; }
    /// <summary>Multiplications and additions by constants folded into the Conv beside them (<see cref="AffineFolding"/>).</summary>
    public required AffineFoldingSummary FoldedAffine { get; init; }
    /// <summary>Appended to <see cref="Sha256"/> with --equalize: equalized statistics are of other tensors than the plain model's.</summary>
    public const string EqualizedDigestSuffix = "+equalized";
    /// <summary>Appended with --keep-affine: the unfolded graph has tensors the folded one does not.</summary>
    public const string AffineKeptDigestSuffix = "+affine-kept";
    /// <summary>Conv pairs whose weight ranges --equalize balanced (0 without it).</summary>
    public int EqualizedPairs { get; init; }
    public required QuantizationPlan Plan { get; init; }
    public required QuantizationOptions Options { get; init; }
    public required Preprocessing Preprocessing { get; init; }
    /// <summary>The model's inputs (name, element type, declared shape).</summary>
    public required IReadOnlyList<InputSpec> Inputs { get; init; }
    /// <summary>How .wav samples become input (sample rate, scale, window).</summary>
    public AudioFormat Audio { get; init; } = new();
    /// <summary>The rate of the first .wav file read in this run, which every later file (calibration or evaluation) must share.</summary>
    public System.Runtime.CompilerServices.StrongBox<int?> AudioRate { get; } = new();
    /// <summary>The tokenizer of text samples (--calib-text, --eval-text), or null.</summary>
    public TextEncoder? Text { get; init; }
    /// <summary>Whether samples are named multi-input files (.npz, .pb folders) rather than images or bare tensors.</summary>
    public bool NamedInputs => ModelInputs.Named(Inputs);
    /// <summary>One sample's shape for a single float input (images, tensors); empty for named inputs.</summary>
    public required int[] SampleShape { get; init; }
    public required string Sha256 { get; init; }
    /// <summary>External data files the model reads (inputs that no output may overwrite).</summary>
    public required IReadOnlyList<string> ExternalDataFiles { get; init; }
    /// <summary>The first output's name and declared shape (−1 for symbolic dimensions): what evaluation scores.</summary>
    public required string OutputName { get; init; }
    public required int[] OutputShape { get; init; }

    public static PreparedModel Prepare(QuantizeRequest request, Action<string> warn)
    {
        var original = OnnxGraph.Load(request.ModelPath);
        ModelChecks.NotQuantized(original, request.ModelPath);
        var external = ModelChecks.ExternalDataFiles(original);
        ModelChecks.FiniteWeights(original, request.ModelPath);
        ExclusionCheck.Verify(original, request.Options.Exclude);
        // The model as the plan sees it: opset 13 (per-channel QDQ exists there), Constants as initializers, the
        // exporter's activation patterns in one form. The FP32 reference stays the user's own file.
        var normalized = new OnnxGraph(InlineCopy(original), original.BaseDirectory);
        var upgrade = OpsetUpgrade.ToOpset13(normalized, request.ModelPath);
        var normalization = GraphNormalizer.Normalize(normalized);
        MemoryUse.Trace("loading and normalizing");
        var options = request.Options.ForTarget();
        if (options.Loss == "entropy" && options.ActivationBits < 8)
            warn($"warning: entropy calibration is built for 8-bit activations; at {options.ActivationBits} bits its KL search clips almost everything (see docs/results.md): prefer msqe or qsin");
        int[] outputShape;
        string outputName;
        List<InputSpec> inputs;
        using (var runner = OrtRunner.FromModel(InlineCopy(original), nameForErrors: request.ModelPath))
        {
            inputs = ModelInputs.Of(runner);
            outputName = runner.OutputNames[0];
            outputShape = runner.OutputShape(outputName);
        }
        MemoryUse.Trace("the FP32 metadata session");
        var (preprocessing, sampleShape) = ModelInputs.Resolve(inputs, request.ModelPath, request.Preprocessing);
        var text = request.Text is { } t ? TextEncoder.Create(t.Vocab!, t.SequenceLength, t.Lowercase, inputs, request.ModelPath) : null;

        var folded = new OnnxGraph(normalized.Model.Clone(), original.BaseDirectory);
        int bn = BatchNormFolding.Fold(folded);
        var affine = options.FoldAffine ? AffineFolding.Fold(folded) : new AffineFoldingSummary(0, 0, 0);
        var equalized = options.Equalize ? CrossLayerEqualization.Apply(folded) : [];
        var plan = PlanBuilder.Build(folded, options);
        MemoryUse.Trace("folding and planning");
        if (plan.FloatOps.Count > 0)
        {
            string list = string.Join(", ", plan.FloatOps.Select(kv => $"{kv.Key} ({kv.Value})"));
            if (request.Strict)
                throw new PtqException($"{request.ModelPath}: ops without a quantization handler: {list} (drop --strict to keep them in float)");
            warn($"note: kept in float (no handler or excluded): {list}");
        }
        if (plan.QdqTensors.Count == 0 && !(options.Int4WeightStorage && folded.Graph.Node.Any(n => MatMulNBits.Eligible(folded, n))))
            throw new PtqException($"{request.ModelPath}: nothing to quantize (no supported ops: {string.Join(", ", OpHandlers.SupportedOps)})");
        return new PreparedModel
        {
            Path = request.ModelPath, Original = original, Normalized = normalized, Upgrade = upgrade, Normalization = normalization, Folded = folded, FoldedBatchNorms = bn, FoldedAffine = affine, Plan = plan, Options = options,
            Preprocessing = preprocessing, Audio = request.Preprocessing.Audio, Inputs = inputs, Text = text, SampleShape = sampleShape,
            // A stats file says whether it was made from the equalized model, and from the unfolded one (--keep-affine).
            Sha256 = ModelChecks.Digest(request.ModelPath, external) + (options.Equalize ? EqualizedDigestSuffix : "") + (options.FoldAffine ? "" : AffineKeptDigestSuffix),
            EqualizedPairs = equalized.Count,
            ExternalDataFiles = external,
            OutputName = outputName,
            OutputShape = outputShape,
        };
    }

    /// <summary>The reader of sample files for this model's inputs.</summary>
    public BatchReader Reader(IReadOnlyList<SampleFile> files, int batch, bool strict)
    {
        var reader = ModelInputs.Reader(Inputs, files, Preprocessing, SampleShape, batch, Audio, AudioRate);
        reader.Strict = strict;
        reader.Text = Text;
        return reader;
    }

    /// <summary>
    /// The calibration samples (--calib) within --limit: the data set calibration reads, and every step that takes its
    /// samples from it (refinement, held-out checks, learned rounding) picks within it.
    /// </summary>
    public List<SampleFile> CalibrationSamples(QuantizeRequest request)
    {
        var files = ListSamples(request.CalibDir ?? throw new InvalidOperationException("no --calib folder"));
        return request.Limit is int limit ? Subset.Spread(files, limit) : files;
    }

    /// <summary>The samples under a folder, as this model's inputs take them.</summary>
    public List<SampleFile> ListSamples(string folder) =>
        Text is not null && File.Exists(folder) ? TextSamples.List(folder) : SampleFolder.List(folder, NamedInputs);

    /// <summary>A copy with external data read in, so it can be handed to ONNX Runtime as bytes.</summary>
    private static Onnx.Proto.ModelProto InlineCopy(OnnxGraph graph)
    {
        var copy = graph.Model.Clone();
        OnnxModelFile.InlineExternalData(copy, graph.BaseDirectory);
        return copy;
    }

    /// <summary>The original model as ONNX Runtime takes it (external data inlined): the FP32 reference.</summary>
    public Onnx.Proto.ModelProto OriginalForRuntime() => InlineCopy(Original);

    /// <summary>The normalized opset-13 model, for work that must understand every op (ZeroQ's gradient graph).</summary>
    public Onnx.Proto.ModelProto NormalizedForRuntime() => Normalized.Model.Clone();
}
