using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite.Handlers;

/// <summary>
/// Add, Mul (residual joins, scaling, biases): every input and the output get their own Q/DQ; a constant input is
/// quantized as an initializer, so ONNX Runtime runs the op as QLinearAdd/QLinearMul instead of in float between a DQ and a Q.
/// </summary>
public sealed class ElementwiseHandler : IOpHandler
{
    /// <summary>(index of the variable input, k) when the node multiplies a variable by a positive finite scalar constant k.</summary>
    private static (int, double)? ScalarFactor(NodeProto node, PlanBuilder plan)
    {
        if (node.Input.Count != 2) return null;
        for (int i = 0; i < 2; i++)
            if (plan.Graph.ConstantValue(node.Input[i]) is { } c && PtqTool.Onnx.TensorData.ElementCount(c) == 1
                && plan.Graph.ConstantValue(node.Input[1 - i]) is null
                && PtqTool.Onnx.TensorData.ToFloats(c, plan.Graph.BaseDirectory)[0] is float k && k > 0 && float.IsFinite(k))
                return (1 - i, k);
        return null;
    }

    public IReadOnlyCollection<string> OpTypes => ["Add", "Mul"];

    public void Plan(NodeProto node, PlanBuilder plan)
    {
        if (node.OpType == "Mul" && ScalarFactor(node, plan) is (int x, double k))
        {
            // y = k·x: read x's codes with scale k·s_x (QuantizationPlan.ScaledCopies); no Mul kernel, no requantization.
            if (plan.QuantizeInput(node, x) && plan.QuantizeOutput(node, 0))
            {
                plan.Plan.ScaledCopies[node.Output[0]] = (node, node.Input[x], k);
                return;
            }
        }
        for (int i = 0; i < node.Input.Count; i++)
            if (!plan.QuantizeConstantInput(node, i)) plan.QuantizeInput(node, i);
        plan.QuantizeOutput(node, 0);
    }
}
