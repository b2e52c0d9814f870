using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite.Handlers;

/// <summary>
/// Conv, ConvTranspose, Gemm, MatMul: activation input(s) and output get Q/DQ; a constant weight is quantized per
/// channel along its output-channel axis (Conv 0, ConvTranspose 1 (with group 1), Gemm 0 or 1 by transB, MatMul last);
/// the bias (Conv/ConvTranspose input 2, Gemm C) becomes int32.
/// </summary>
public sealed class WeightedOpHandler : IOpHandler
{
    public IReadOnlyCollection<string> OpTypes => ["Conv", "ConvTranspose", "Gemm", "MatMul"];

    public void Plan(NodeProto node, PlanBuilder plan)
    {
        plan.QuantizeInput(node, 0);
        var weight = plan.Graph.Initializer(node.Input[1]);
        if (weight is null)
        {
            plan.QuantizeInput(node, 1);
        }
        else
        {
            int rank = weight.Dims.Count;
            int axis = node.OpType switch
            {
                "Conv" => 0,
                "ConvTranspose" => NodeAttributes.GetInt(node, "group", 1) == 1 ? 1 : -1,
                "Gemm" => NodeAttributes.GetInt(node, "transB", 0) == 1 ? 0 : 1,
                _ => rank - 1,
            };
            if (node.OpType == "Gemm" && (NodeAttributes.GetFloat(node, "alpha", 1) != 1 || NodeAttributes.GetFloat(node, "beta", 1) != 1)) axis = -1;
            int? bias = node.OpType != "MatMul" && node.Input.Count > 2 && node.Input[2].Length > 0 && plan.Graph.Initializer(node.Input[2]) is { } b
                        && b.Dims.Count == 1 && axis >= 0 && b.Dims[0] == weight.Dims[axis]
                ? 2 : null;
            plan.Weight(new WeightUse(node, 1, axis, bias));
        }
        // A MatMul output that only float ops read stays float: ONNX Runtime then runs it as MatMulIntegerToFloat
        // (integer product, float result) and no requantization rounds it (BERT's FFN outputs carry outlier channels).
        // Not where the output is known to be 2-D: ONNX Runtime first fuses a 2-D MatMul + Add into a float Gemm.
        if (node.OpType == "MatMul" && !plan.ReadQuantized(node.Output[0]) && plan.Rank(node.Output[0]) is not (int and <= 2)) return;
        plan.QuantizeOutput(node, 0);
    }
}
