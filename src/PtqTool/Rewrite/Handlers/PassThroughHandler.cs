using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite.Handlers;

/// <summary>Ops that move or pick values without making new ones: the output reuses the input's scale and zero point.</summary>
public sealed class PassThroughHandler : IOpHandler
{
    public IReadOnlyCollection<string> OpTypes =>
        ["MaxPool", "GlobalMaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Resize"];

    public void Plan(NodeProto node, PlanBuilder plan)
    {
        if (!plan.QuantizeInput(node, 0)) return;
        if (plan.QuantizeOutput(node, 0, ownStats: false)) plan.Plan.Union(node.Input[0], node.Output[0]);
    }
}
