using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite.Handlers;

/// <summary>
/// AveragePool and GlobalAveragePool: the output is a mean, far narrower than the input's extremes, so it gets its own
/// statistics (ONNX Runtime's QLinearAveragePool/QLinearGlobalAveragePool take separate input and output scales).
/// Sharing the input's scale destroys squeeze-excitation branches: on PaddleOCR's detector a pooled tensor with
/// values of a few units was quantized with the input's step of 11 (layer SQNR −20 dB; docs/real-models.md).
/// </summary>
public sealed class AveragingHandler : IOpHandler
{
    public IReadOnlyCollection<string> OpTypes => ["AveragePool", "GlobalAveragePool"];

    public void Plan(NodeProto node, PlanBuilder plan)
    {
        if (!plan.QuantizeInput(node, 0)) return;
        plan.QuantizeOutput(node, 0);
    }
}
