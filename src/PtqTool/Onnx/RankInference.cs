using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>
/// The rank of as many tensors as a few local rules can tell (graph inputs and constants, then shape-preserving,
/// broadcasting and rank-changing ops); tensors it cannot tell are absent. Used where a rewrite is simpler when the rank is known.
/// </summary>
public static class RankInference
{
    private static readonly HashSet<string> SameAsFirst =
    [
        "Relu", "Sigmoid", "Tanh", "Clip", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "PRelu", "Softplus", "Exp", "Log", "Sqrt",
        "Neg", "Abs", "Erf", "Reciprocal", "Floor", "Ceil", "Round", "Cast", "Identity", "Dropout", "Softmax", "LogSoftmax", "Hardmax",
        "BatchNormalization", "InstanceNormalization", "LRN", "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool",
        "GlobalMaxPool", "Resize", "Upsample", "Pad", "Transpose", "Concat", "Not", "Mish", "Gelu",
    ];

    private static readonly HashSet<string> Broadcasting = ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less", "Greater", "And", "Or"];

    public static Dictionary<string, int> Infer(OnnxGraph graph)
    {
        var ranks = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in graph.Graph.Initializer) ranks[t.Name] = t.Dims.Count;
        foreach (var v in graph.Graph.Input.Concat(graph.Graph.ValueInfo))
            if (v.Type?.TensorType?.Shape is { } s && !ranks.ContainsKey(v.Name)) ranks[v.Name] = s.Dim.Count;
        foreach (var n in graph.TopologicalOrder())
        {
            if (n.Output.Count == 0 || n.Output[0].Length == 0) continue;
            int? r = Rule(graph, n, ranks);
            if (r is int known) ranks[n.Output[0]] = known;
        }
        return ranks;
    }

    private static int? Rule(OnnxGraph g, NodeProto n, Dictionary<string, int> ranks)
    {
        int? In(int i) => i < n.Input.Count && ranks.TryGetValue(n.Input[i], out int r) ? r : null;
        int? ConstLength(int i) => i < n.Input.Count && g.ConstantValue(n.Input[i]) is { } t ? (int)TensorData.ElementCount(t) : null;
        switch (n.OpType)
        {
            case "Constant": return NodeAttributes.Find(n, "value")?.T is { } v ? v.Dims.Count : null;
            case "Flatten" or "Gemm": return 2;
            case "Shape": return 1;
            case "MatMul": return In(0) is int a && In(1) is int b ? Math.Max(a, b) : null;
            case "Reshape": return ConstLength(1);
            case "Squeeze":
            {
                int? axes = NodeAttributes.Find(n, "axes") is { } at ? at.Ints.Count : ConstLength(1);
                return In(0) is int r && axes is int k ? r - k : null;
            }
            case "Unsqueeze":
            {
                int? axes = NodeAttributes.Find(n, "axes") is { } at ? at.Ints.Count : ConstLength(1);
                return In(0) is int r && axes is int k ? r + k : null;
            }
            case "ReduceMean" or "ReduceSum" or "ReduceMax" or "ReduceMin" or "ReduceProd" or "ReduceL2":
            {
                if (NodeAttributes.GetInt(n, "keepdims", 1) == 1) return In(0);
                int? axes = NodeAttributes.Find(n, "axes") is { } at ? at.Ints.Count : ConstLength(1);
                return In(0) is int r && axes is int k ? r - k : null;
            }
        }
        if (SameAsFirst.Contains(n.OpType)) return In(0);
        if (Broadcasting.Contains(n.OpType))
        {
            int? best = null;
            for (int i = 0; i < n.Input.Count; i++)
            {
                if (In(i) is not int r) return null;
                best = Math.Max(best ?? 0, r);
            }
            return best;
        }
        return null;
    }
}
