using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>What <see cref="GraphNormalizer"/> changed, by rule.</summary>
public sealed record NormalizationSummary(IReadOnlyDictionary<string, int> Changes)
{
    public override string ToString() => Changes.Count == 0 ? "nothing to normalize" : string.Join(", ", Changes.Select(kv => $"{kv.Key} {kv.Value}"));
}

/// <summary>
/// Puts an exported graph into the form the quantization plan expects, whatever exporter wrote it: Constant nodes
/// become initializers (so their tensors are seen as weights), Identity nodes go, division by a constant becomes
/// multiplication by its reciprocal, and hard sigmoids (HardSigmoid nodes, clip(k·x + b, 0, 1)) take the form
/// clip(x + b, 0, m)·k that quantizes to integer kernels.
/// </summary>
public static class GraphNormalizer
{
    public static NormalizationSummary Normalize(OnnxGraph graph)
    {
        var changes = new SortedDictionary<string, int>(StringComparer.Ordinal);
        void Count(string rule, int n) { if (n > 0) changes[rule] = changes.GetValueOrDefault(rule) + n; }
        Count("Constant → initializer", ConstantsToInitializers(graph));
        Count("Identity removed", RemoveIdentities(graph));
        Count("Div by constant → Mul", DivisionsByConstants(graph));
        Count("hard sigmoid → clip(x + b, 0, m)·k", HardSigmoids(graph));
        graph.SortNodes();
        return new NormalizationSummary(changes);
    }

    public static int ConstantsToInitializers(OnnxGraph graph)
    {
        int n = 0;
        foreach (var node in graph.Graph.Node.Where(x => x.OpType == "Constant").ToList())
        {
            var a = node.Attribute.FirstOrDefault();
            if (node.Attribute.Count != 1 || a is null) continue;
            TensorProto? t = a.Name switch
            {
                "value" => a.T?.Clone(),
                "value_float" => TensorData.Scalar("", a.F),
                "value_floats" => TensorData.FromFloats("", [a.Floats.Count], a.Floats.ToArray()),
                "value_int" => TensorData.FromInt64("", [], [a.I]),
                "value_ints" => TensorData.FromInt64("", [a.Ints.Count], a.Ints.ToArray()),
                _ => null,
            };
            if (t is null || graph.IsGraphOutput(node.Output[0])) continue;
            t.Name = node.Output[0];
            graph.RemoveNode(node);
            graph.AddInitializer(t);
            n++;
        }
        return n;
    }

    public static int RemoveIdentities(OnnxGraph graph)
    {
        int n = 0;
        foreach (var node in graph.Graph.Node.Where(x => x.OpType == "Identity").ToList())
        {
            string from = node.Output[0], to = node.Input[0];
            if (graph.IsGraphOutput(from)) continue;
            graph.RemoveNode(node);
            graph.RedirectConsumers(from, to);
            n++;
        }
        return n;
    }

    public static int DivisionsByConstants(OnnxGraph graph)
    {
        int n = 0;
        foreach (var node in graph.Graph.Node.Where(x => x.OpType == "Div").ToList())
        {
            var c = graph.ConstantValue(node.Input[1]);
            if (c is null || c.DataType != ElementType.Float) continue;
            var values = TensorData.ToFloats(c, graph.BaseDirectory);
            if (values.Any(v => v == 0 || !float.IsFinite(v))) continue;
            string name = graph.UniqueName(node.Input[1] + "_reciprocal");
            graph.AddInitializer(TensorData.FromFloats(name, TensorData.Shape(c), values.Select(v => 1 / v).ToArray()));
            node.OpType = "Mul";
            node.Input[1] = name;
            n++;
        }
        return n;
    }

    /// <summary>
    /// Hard sigmoids in one integer-friendly form, clip(x + b, 0, m)·k with k·m = 1: an Add, a Clip(0, m) the quantizer
    /// absorbs, and a Mul by a constant, all of which ONNX Runtime runs as integer kernels. A HardSigmoid(x; α, β) node
    /// (no integer kernel exists for it) and clip(k·x + b, 0, 1) become clip(x + β/α, 0, 1/α)·α; the form is exact for
    /// α, k &gt; 0 (up to float rounding of the constants).
    /// </summary>
    public static int HardSigmoids(OnnxGraph graph)
    {
        int n = 0;
        foreach (var node in graph.Graph.Node.ToList())
        {
            if (!graph.Graph.Node.Contains(node)) continue;
            if (node.OpType == "HardSigmoid")
            {
                float alpha = NodeAttributes.GetFloat(node, "alpha", 0.2f), beta = NodeAttributes.GetFloat(node, "beta", 0.5f);
                if (!(alpha > 0)) continue;
                graph.RemoveNode(node);
                AddClipMul(graph, node.Name, node.Input[0], node.Output[0], beta / alpha, 1 / alpha, alpha);
                n++;
            }
            else if (node.OpType == "Clip" && ClipBounds(graph, node) is (0f, 1f))
            {
                var add = graph.Producer(node.Input[0]);
                if (add is not { OpType: "Add" } || !Single(graph, add.Output[0]) || VariableAndScalar(graph, add) is not (string ax, float b)) continue;
                var mul = graph.Producer(ax);
                if (mul is not { OpType: "Mul" } || !Single(graph, mul.Output[0]) || VariableAndScalar(graph, mul) is not (string x, float k) || !(k > 0)) continue;
                foreach (var r in new[] { mul, add, node }) graph.RemoveNode(r);
                AddClipMul(graph, node.Name, x, node.Output[0], b / k, 1 / k, k);
                n++;
            }
        }
        return n;
    }

    private static void AddClipMul(OnnxGraph graph, string name, string x, string output, float shift, float max, float scale)
    {
        string p = name.Length > 0 ? name : output;
        string shiftName = graph.UniqueName(p + "_shift"), zero = graph.UniqueName(p + "_zero"), top = graph.UniqueName(p + "_max"), k = graph.UniqueName(p + "_scale");
        graph.AddInitializer(TensorData.Scalar(shiftName, shift));
        graph.AddInitializer(TensorData.Scalar(zero, 0));
        graph.AddInitializer(TensorData.Scalar(top, max));
        graph.AddInitializer(TensorData.Scalar(k, scale));
        string added = graph.UniqueName(p + "_shifted"), clipped = graph.UniqueName(p + "_clipped");
        graph.AddNode(NodeAttributes.Node("Add", graph.UniqueName(p + "_Add"), [x, shiftName], [added]));
        graph.AddNode(NodeAttributes.Node("Clip", graph.UniqueName(p + "_Clip"), [added, zero, top], [clipped]));
        graph.AddNode(NodeAttributes.Node("Mul", graph.UniqueName(p + "_Mul"), [clipped, k], [output]));
    }

    private static bool Single(OnnxGraph graph, string tensor) => graph.Consumers(tensor).Count == 1 && !graph.IsGraphOutput(tensor);

    /// <summary>A binary node's non-constant input and its constant scalar input (null when it is not of that form).</summary>
    private static (string? Variable, float? Scalar) VariableAndScalar(OnnxGraph graph, NodeProto node)
    {
        if (node.Input.Count != 2) return (null, null);
        for (int i = 0; i < 2; i++)
        {
            var c = graph.ConstantValue(node.Input[i]);
            var other = node.Input[1 - i];
            if (c is not null && TensorData.ElementCount(c) == 1 && graph.ConstantValue(other) is null)
                return (other, TensorData.ToFloats(c, graph.BaseDirectory)[0]);
        }
        return (node.Input[0], null);
    }

    private static (float Lo, float Hi)? ClipBounds(OnnxGraph graph, NodeProto clip)
    {
        float? Input(int i) => clip.Input.Count > i && clip.Input[i].Length > 0 && graph.ConstantValue(clip.Input[i]) is { } t ? TensorData.ToFloats(t, graph.BaseDirectory)[0] : null;
        float lo = Input(1) ?? NodeAttributes.GetFloat(clip, "min", float.NegativeInfinity);
        float hi = Input(2) ?? NodeAttributes.GetFloat(clip, "max", float.PositiveInfinity);
        return float.IsFinite(lo) && float.IsFinite(hi) ? (lo, hi) : null;
    }
}
