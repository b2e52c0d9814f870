using PtqTool.Evaluation;
using PtqTool.Kernels;
using PtqTool.Pipeline;
using PtqTool.Rewrite;

namespace PtqTool.Reports;

/// <summary>Everything `ptq quantize` measured; written as JSON (schema "ptq-report/2", docs/report-format.md), Markdown and a console table.</summary>
public sealed record QuantizationReport
{
    public required string InputModel { get; init; }
    public required string OutputModel { get; init; }
    public required QuantizationOptions Options { get; init; }
    /// <summary>How .wav samples were read (--sample-rate, --audio-scale, --audio-window); null when no sample was audio.</summary>
    public Data.AudioFormat? Audio { get; init; }
    /// <summary>The sample rate the .wav files of the run had (all share it), where any were read.</summary>
    public int? AudioRateFound { get; init; }
    /// <summary>The per-layer weight bits of --avg-bits (null without it).</summary>
    public Pipeline.MixedPrecisionStep.Result? MixedPrecision { get; init; }
    /// <summary>What --rounding adaround did; null with nearest rounding.</summary>
    public Pipeline.RoundingStep.Result? Rounding { get; init; }
    public Pipeline.MultipointStep.Result? Multipoint { get; init; }
    /// <summary>The steps of --auto-fallback (null without it).</summary>
    public Pipeline.FallbackJob.Result? Fallback { get; init; }
    public required string CalibrationSource { get; init; }
    public required long CalibrationSamples { get; init; }
    public required long CalibrationSkipped { get; init; }
    public required int ObservedTensors { get; init; }
    public required int FoldedBatchNorms { get; init; }
    /// <summary>Mul/Add nodes by constants folded into Convs (0 when there were none).</summary>
    public int FoldedAffineOps { get; init; }
    /// <summary>Conv pairs balanced by --equalize.</summary>
    public int EqualizedPairs { get; init; }
    public Onnx.OpsetUpgradeSummary? Upgrade { get; init; }
    public Onnx.NormalizationSummary? Normalization { get; init; }
    public required RewriteSummary Rewrite { get; init; }
    public required IReadOnlyDictionary<string, int> FloatOps { get; init; }
    /// <summary>Recognized LayerNorm/GELU patterns kept in float as wholes, by kind.</summary>
    public IReadOnlyDictionary<string, int> FloatUnits { get; init; } = new Dictionary<string, int>();
    /// <summary>Quantizable nodes kept float on attention-mask paths, and Add/Mul nodes kept float because only float ops read them.</summary>
    public int MaskNodes { get; init; }
    /// <summary>What --smoothquant did, or null without it.</summary>
    public Pipeline.SmoothingSummary? Smoothing { get; init; }
    /// <summary>What --refine output did, or null when the scales were not refined.</summary>
    public Pipeline.RefinementSummary? Refinement { get; init; }
    public Pipeline.OutputBiasCorrectionSummary? OutputBiasCorrection { get; init; }
    public int FloatJoins { get; init; }
    public required string EvaluationSource { get; init; }
    /// <summary>Evaluation images that could not be read and were skipped.</summary>
    public int EvaluationSkipped { get; init; }
    /// <summary>FP32 against the quantized model on this CPU's fused integer kernels.</summary>
    public required OutputComparison Outputs { get; init; }
    /// <summary>FP32 against the quantized model's exact QDQ semantics (ONNX Runtime with graph optimizations off: fake quantization).</summary>
    public required OutputComparison ExactOutputs { get; init; }
    public required IReadOnlyList<LayerError> Layers { get; init; }
    public required long Fp32Bytes { get; init; }
    public required long Int8Bytes { get; init; }
    /// <summary>Bytes of the integer weight tensors alone (<see cref="Rewrite.WeightBytes"/>).</summary>
    public long WeightBytes { get; init; }
    public required int LatencyBatch { get; init; }
    public required double Fp32LatencyMs { get; init; }
    public required double Int8LatencyMs { get; init; }
    public required TargetSummary Target { get; init; }
    /// <summary>The saturation check for the target.</summary>
    public required SaturationReport Saturation { get; init; }
    /// <summary>The same check for the kernels of the CPU the numbers were measured on (the same object when that is the target).</summary>
    public required SaturationReport NativeSaturation { get; init; }
    public required IReadOnlyDictionary<string, int> OnnxRuntimeOps { get; init; }
    public double? MaxDrop { get; init; }
    /// <summary>Peak resident memory of the run, in bytes.</summary>
    public long PeakRssBytes { get; init; }
    public required Gate Gate { get; init; }

    /// <summary>
    /// The accuracy that holds for the target: this CPU's fused kernels when it runs the target's kernels; otherwise
    /// the exact QDQ semantics, which a target whose kernels cannot saturate reproduces.
    /// </summary>
    public OutputComparison GateOutputs => Target.OnTarget ? Outputs : ExactOutputs;

    public string GateBasis => Target.OnTarget
        ? "this CPU's fused integer kernels (it runs the target's kernels)"
        : $"exact QDQ semantics (this CPU runs {KernelTargets.Name(Target.Native)} kernels, not {KernelTargets.Name(Target.Target)})";

    /// <summary>The number the CI gate compares with its threshold (<see cref="Gate"/>), on <see cref="GateOutputs"/>.</summary>
    public double GateValue => Gate.Value(GateOutputs);

    /// <summary>Measured off target, a model whose target kernels can saturate has no accuracy the gate could vouch for.</summary>
    public bool GatePassed => Gate.Threshold is null || (Gate.Passes(GateOutputs) && (Target.OnTarget || !Saturation.CanSaturate));

    /// <summary>Fused minus exact: what this CPU's kernels add to (or take from) the quantization error, and why.</summary>
    public (double Top1, double SqnrDb, string Cause) KernelGap
    {
        get
        {
            // Agreement is only a measure for one score vector per sample; heat maps and sequences are judged by SQNR alone.
            double top1 = Outputs.Labelled ? Outputs.Int8Top1 - ExactOutputs.Int8Top1
                : Outputs.ClassScores ? Outputs.Agreement - ExactOutputs.Agreement : double.NaN;
            double sqnr = Outputs.SqnrDb - ExactOutputs.SqnrDb;
            string cause = NativeSaturation.CanSaturate
                ? $"saturation: this CPU's kernels ({KernelTargets.Name(Target.Native)}) can overflow 16-bit pairs in {NativeSaturation.SaturatingLayers} layer(s)"
                : (double.IsNaN(top1) || Math.Abs(top1) < 0.5) && sqnr > -3 ? "none (within kernel rounding)" : "kernel differences (no saturation is possible here)";
            return (top1, sqnr, cause);
        }
    }

    /// <summary>
    /// Why the INT8 model is slower than FP32 when it is (null otherwise): what ONNX Runtime left outside its integer
    /// kernels in the graph it actually runs. The plan never makes a model slower without the report saying so.
    /// </summary>
    public string? SlowdownReason
    {
        get
        {
            if (!(Int8LatencyMs > Fp32LatencyMs)) return null;
            int Count(string op) => OnnxRuntimeOps.GetValueOrDefault(op);
            int qdq = Count("QuantizeLinear") + Count("DequantizeLinear");
            int integer = OnnxRuntimeOps.Where(kv => kv.Key.StartsWith("QLinear", StringComparison.Ordinal) || kv.Key.StartsWith("QGemm", StringComparison.Ordinal)
                || kv.Key.Contains("Integer", StringComparison.Ordinal)).Sum(kv => kv.Value);
            int floats = FloatOps.Values.Sum();
            return $"INT8 is {Int8LatencyMs / Fp32LatencyMs:0.00}x the FP32 time here: ONNX Runtime runs {integer} integer kernels, "
                + $"{qdq} QuantizeLinear/DequantizeLinear on their own and {floats} float ops; at batch {LatencyBatch} the (de)quantization "
                + "and the float ops cost more than the integer kernels save (per-op times: ptq bench --profile)";
        }
    }
}
