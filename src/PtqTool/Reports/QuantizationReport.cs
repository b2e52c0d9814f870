using PtqTool.Evaluation;
using PtqTool.Rewrite;

namespace PtqTool.Reports;

/// <summary>Everything `ptq quantize` measured; written as JSON (schema "ptq-report/1", docs/report-format.md), Markdown and a console table.</summary>
public sealed record QuantizationReport
{
    public required string InputModel { get; init; }
    public required string OutputModel { get; init; }
    public required QuantizationOptions Options { get; init; }
    public required string CalibrationSource { get; init; }
    public required long CalibrationSamples { get; init; }
    public required long CalibrationSkipped { get; init; }
    public required int ObservedTensors { get; init; }
    public required int FoldedBatchNorms { get; init; }
    public required RewriteSummary Rewrite { get; init; }
    public required IReadOnlyDictionary<string, int> FloatOps { get; init; }
    public required string EvaluationSource { get; init; }
    public required OutputComparison Outputs { get; init; }
    public required IReadOnlyList<LayerError> Layers { get; init; }
    public required long Fp32Bytes { get; init; }
    public required long Int8Bytes { get; init; }
    public required int LatencyBatch { get; init; }
    public required double Fp32LatencyMs { get; init; }
    public required double Int8LatencyMs { get; init; }
    public required string Cpu { get; init; }
    public required IReadOnlyDictionary<string, int> OnnxRuntimeOps { get; init; }
    public double? MaxDrop { get; init; }

    /// <summary>The number the CI gate compares with --max-drop: top-1 drop with labels, else 100 − top-1 agreement.</summary>
    public double GateValue => Outputs.Labelled ? Outputs.Top1Drop : 100 - Outputs.Agreement;

    public bool GatePassed => MaxDrop is not double limit || GateValue <= limit;
}
