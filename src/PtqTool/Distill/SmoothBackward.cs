using PtqTool.Onnx.Proto;

namespace PtqTool.Distill;

/// <summary>
/// The smooth elementwise functions of transformer blocks (LayerNorm written out as ReduceMean/Pow/Sqrt/Div, GELU
/// through Erf or Tanh): Erf dx = dy·(2/√π)·e^(−x²); Sqrt dx = dy / (2y); Pow with a constant exponent b,
/// dx = dy·b·x^(b−1); Tanh dx = dy·(1 − y²); Exp dx = dy·y.
/// </summary>
public sealed class SmoothBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["Erf", "Sqrt", "Pow", "Tanh", "Exp"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        var result = new Dictionary<int, string>();
        if (node.OpType == "Pow" && needs(1))
            throw new PtqException($"Pow '{node.Name}': its exponent is computed, not a constant; no backward rule for that");
        if (!needs(0)) return result;
        string x = node.Input[0], y = node.Output[0];
        string local = node.OpType switch
        {
            "Erf" => c.Op("Mul", [c.Scalar((float)(2 / Math.Sqrt(Math.PI))), c.Op("Exp", [c.Op("Neg", [c.Op("Mul", [x, x])])])]),
            "Sqrt" => c.Op("Reciprocal", [c.Op("Mul", [y, c.Scalar(2)])]),
            "Pow" => c.Op("Mul", [node.Input[1], c.Op("Pow", [x, c.Op("Sub", [node.Input[1], c.Scalar(1)])])]),
            "Tanh" => c.Op("Sub", [c.Scalar(1), c.Op("Mul", [y, y])]),
            _ => y,
        };
        string dX = c.Op("Mul", [dY, local]);
        result[0] = node.OpType == "Pow" ? c.Unbroadcast(dX, c.Shape(y), c.Shape(x)) : dX;
        return result;
    }
}
