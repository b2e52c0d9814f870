using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite.Handlers;

/// <summary>Add, Mul (residual joins, scaling): every non-constant input and the output get their own Q/DQ.</summary>
public sealed class ElementwiseHandler : IOpHandler
{
    public IReadOnlyCollection<string> OpTypes => ["Add", "Mul"];

    public void Plan(NodeProto node, PlanBuilder plan)
    {
        for (int i = 0; i < node.Input.Count; i++) plan.QuantizeInput(node, i);
        plan.QuantizeOutput(node, 0);
    }
}
