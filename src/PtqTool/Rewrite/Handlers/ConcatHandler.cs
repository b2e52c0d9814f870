using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite.Handlers;

/// <summary>Concat: inputs and output share one scale and zero point, chosen from all their statistics together.</summary>
public sealed class ConcatHandler : IOpHandler
{
    public IReadOnlyCollection<string> OpTypes => ["Concat"];

    public void Plan(NodeProto node, PlanBuilder plan)
    {
        if (!plan.QuantizeOutput(node, 0)) return;
        for (int i = 0; i < node.Input.Count; i++)
            if (plan.QuantizeInput(node, i)) plan.Plan.Union(node.Output[0], node.Input[i]);
    }
}
