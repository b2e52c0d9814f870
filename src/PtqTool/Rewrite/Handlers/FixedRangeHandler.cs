using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite.Handlers;

/// <summary>Softmax and Sigmoid: the output range is [0, 1] by definition, no statistics needed.</summary>
public sealed class FixedRangeHandler : IOpHandler
{
    public IReadOnlyCollection<string> OpTypes => ["Softmax", "Sigmoid"];

    public void Plan(NodeProto node, PlanBuilder plan)
    {
        plan.QuantizeInput(node, 0);
        if (plan.QuantizeOutput(node, 0, ownStats: false)) plan.Plan.FixedRanges[node.Output[0]] = (0, 1);
    }
}
