using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite;

/// <summary>
/// Element types of every tensor, propagated through the graph with a few rules (shape and index ops produce int64,
/// comparisons bool, Cast its "to", everything else its first input's type). Enough to tell float activations apart.
/// </summary>
public static class TypeInference
{
    private static readonly HashSet<string> Int64Outputs = ["Shape", "Size", "ArgMax", "ArgMin", "NonZero", "NonMaxSuppression", "TopK:1"];
    private static readonly HashSet<string> BoolOutputs = ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf"];

    public static Dictionary<string, int> Infer(OnnxGraph graph)
    {
        var types = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in graph.Graph.Initializer) types[t.Name] = t.DataType;
        foreach (var v in graph.Graph.Input.Concat(graph.Graph.ValueInfo).Concat(graph.Graph.Output))
            if (v.Type?.TensorType is { } tt && tt.ElemType != 0) types.TryAdd(v.Name, tt.ElemType);
        foreach (var node in graph.TopologicalOrder())
        {
            for (int i = 0; i < node.Output.Count; i++)
            {
                string o = node.Output[i];
                if (o.Length == 0 || types.ContainsKey(o)) continue;
                int? t = Rule(node, i, types);
                if (t is int known) types[o] = known;
            }
        }
        return types;
    }

    private static int? Rule(NodeProto node, int outputIndex, Dictionary<string, int> types)
    {
        string op = node.OpType;
        if (Int64Outputs.Contains(op) || Int64Outputs.Contains($"{op}:{outputIndex}")) return ElementType.Int64;
        if (op == "MaxPool" && outputIndex == 1) return ElementType.Int64;
        if (BoolOutputs.Contains(op)) return ElementType.Bool;
        if (op == "Cast") return (int)NodeAttributes.GetInt(node, "to", ElementType.Float);
        if (op == "Constant") return NodeAttributes.Find(node, "value")?.T?.DataType ?? ElementType.Float;
        if (op is "QuantizeLinear") return node.Input.Count > 2 && types.TryGetValue(node.Input[2], out int zt) ? zt : ElementType.UInt8;
        if (op is "DequantizeLinear") return ElementType.Float;
        if (op == "ConstantOfShape") return NodeAttributes.Find(node, "value")?.T?.DataType ?? ElementType.Float;
        foreach (var input in node.Input)
            if (input.Length > 0 && types.TryGetValue(input, out int t)) return t;
        return null;
    }
}
