using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rounding;

/// <summary>
/// G = Σ_p x_p x_pᵀ over every input patch x_p of one Conv/Gemm/MatMul (per group), computed inside ONNX Runtime: a
/// branch is added to a copy of the model at the node's data input, and the copy is cut down to that branch. For a Conv
/// the patches come from a Conv with one-hot kernels and the node's own strides, pads, dilations and groups (its output
/// channel g·K + j is patch element j of group g), so padding and striding are exactly the node's; G is then one batched
/// MatMul of the patches with their transpose. No patch tensor leaves ONNX Runtime: a run returns [groups, K, K].
/// </summary>
public static class InputGram
{
    public const string Output = "ptq_input_gram";

    /// <param name="nodeIndex">The node's position in <paramref name="model"/>'s node list.</param>
    public static ModelProto Build(ModelProto model, int nodeIndex, int[] weightShape, WeightRows rows)
    {
        var copy = model.Clone();
        var graph = new OnnxGraph(copy);
        var node = copy.Graph.Node[nodeIndex];
        string x = node.Input[0];
        int groups = rows.Groups, k = rows.K;
        string Shape(string name, params long[] dims)
        {
            string n = graph.UniqueName(name);
            graph.AddInitializer(TensorData.FromInt64(n, [dims.Length], dims));
            return n;
        }
        string Add(string op, string[] inputs, params AttributeProto[] attributes)
        {
            string output = graph.UniqueName("ptq_gram_" + op);
            graph.AddNode(NodeAttributes.Node(op, graph.UniqueName("ptq_gram_" + op), inputs, [output], attributes));
            return output;
        }
        string patches;  // [groups, K, positions]
        if (node.OpType == "Conv")
        {
            var oneHot = new float[groups * k * k];
            for (int g = 0; g < groups; g++)
                for (int j = 0; j < k; j++) oneHot[(g * k + j) * k + j] = 1;
            string kernel = graph.UniqueName("ptq_gram_one_hot");
            graph.AddInitializer(TensorData.FromFloats(kernel, [groups * k, .. weightShape[1..]], oneHot));
            var attributes = node.Attribute.Where(a => a.Name is "strides" or "pads" or "dilations" or "group" or "auto_pad" or "kernel_shape").Select(a => a.Clone()).ToArray();
            string columns = Add("Conv", [x, kernel], attributes);                   // [N, g·K, spatial…]
            string split = Add("Reshape", [columns, Shape("ptq_gram_split", 0, groups, k, -1)]);
            string moved = Add("Transpose", [split], NodeAttributes.Ints("perm", [1, 2, 0, 3]));
            patches = Add("Reshape", [moved, Shape("ptq_gram_patches", groups, k, -1)]);
        }
        else
        {
            string flat = Add("Reshape", [x, Shape("ptq_gram_rows", -1, k)]);         // [M, K]
            string transposed = Add("Transpose", [flat], NodeAttributes.Ints("perm", [1, 0]));
            patches = Add("Reshape", [transposed, Shape("ptq_gram_patches", 1, k, -1)]);
        }
        string across = Add("Transpose", [patches], NodeAttributes.Ints("perm", [0, 2, 1]));
        string gram = Add("MatMul", [patches, across]);
        graph.AddNode(NodeAttributes.Node("Identity", graph.UniqueName("ptq_gram_out"), [gram], [Output]));
        copy.Graph.Output.Clear();
        graph.AddOutput(Output);
        KeepAncestors(graph, Output);
        return copy;
    }

    /// <summary>Removes every node the tensor does not depend on (ONNX Runtime would run them for nothing).</summary>
    private static void KeepAncestors(OnnxGraph graph, string tensor)
    {
        var keep = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<string>([tensor]);
        while (stack.Count > 0)
        {
            var producer = graph.Producer(stack.Pop());
            if (producer is null || !keep.Add(producer)) continue;
            foreach (var i in producer.Input) if (i.Length > 0) stack.Push(i);
        }
        foreach (var n in graph.Graph.Node.Where(n => !keep.Contains(n)).ToList()) graph.RemoveNode(n);
        var used = new HashSet<string>(graph.Graph.Node.SelectMany(n => n.Input), StringComparer.Ordinal);
        foreach (var t in graph.Graph.Initializer.Where(t => !used.Contains(t.Name)).Select(t => t.Name).ToList()) graph.RemoveInitializer(t);
    }

    /// <summary>Σ over the batches of G, per group ([groups][K·K], summed in double, returned in float).</summary>
    public static float[][] Collect(ModelProto gramModel, IEnumerable<FloatTensor> batches, WeightRows rows, RunnerOptions options)
    {
        int kk = rows.K * rows.K;
        var sums = new double[rows.Groups * kk];
        using (var runner = OrtRunner.FromModel(gramModel, options, "input Gram model"))
            foreach (var b in batches)
            {
                var g = runner.Run(b, [Output])[Output].Data;
                for (int i = 0; i < sums.Length; i++) sums[i] += g[i];
            }
        return Enumerable.Range(0, rows.Groups).Select(g => sums.AsSpan(g * kk, kk).ToArray().Select(v => (float)v).ToArray()).ToArray();
    }
}
