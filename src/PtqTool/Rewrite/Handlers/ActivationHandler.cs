using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite.Handlers;

/// <summary>
/// Relu and Clip. Under asymmetric activations a Relu, or a Clip with min 0 and a constant max (Relu6), whose input
/// comes only from a quantized node is folded: the node is removed and the producer's output takes its range. The
/// quantizer's lowest level is pinned at 0, so it clips at 0 exactly as Relu does, and a Clip's max caps the range's top,
/// so values above it saturate exactly as Clip does. Otherwise the activation's input and output get Q/DQ.
/// </summary>
public sealed class ActivationHandler : IOpHandler
{
    public IReadOnlyCollection<string> OpTypes => ["Relu", "Clip"];

    public void Plan(NodeProto node, PlanBuilder plan)
    {
        var producer = plan.Graph.Producer(node.Input[0]);
        float? upper = node.OpType == "Clip" ? ClipUpperIfLowerIsZero(node, plan) : null;
        bool foldable = (node.OpType == "Relu" || upper is not null) && !plan.Options.SymmetricActivations && producer is not null
                        && plan.IsQuantized(producer) && plan.Graph.Consumers(node.Input[0]).Count == 1
                        && !plan.Graph.IsGraphOutput(node.Input[0]) && !plan.Graph.IsGraphOutput(node.Output[0]);
        if (foldable)
        {
            plan.FoldActivation(node);
            if (upper is float max && float.IsFinite(max)) plan.Plan.UpperLimits[node.Output[0]] = max;
            return;
        }
        plan.QuantizeInput(node, 0);
        plan.QuantizeOutput(node, 0);
    }

    /// <summary>A Clip's max (+∞ when absent) if its min is the constant 0; null otherwise (opset 11+ inputs, or the older attributes).</summary>
    private static float? ClipUpperIfLowerIsZero(NodeProto node, PlanBuilder plan)
    {
        float? Input(int i) => node.Input.Count > i && node.Input[i].Length > 0
            ? plan.Graph.ConstantValue(node.Input[i]) is { } t ? PtqTool.Onnx.TensorData.ToFloats(t)[0] : float.NaN
            : null;
        float lo = Input(1) ?? PtqTool.Onnx.NodeAttributes.GetFloat(node, "min", float.NegativeInfinity);
        float hi = Input(2) ?? PtqTool.Onnx.NodeAttributes.GetFloat(node, "max", float.PositiveInfinity);
        return lo == 0 && hi > 0 ? hi : null;
    }
}
