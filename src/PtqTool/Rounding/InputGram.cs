using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rounding;

/// <summary>One group's three Gram matrices (K×K row-major): quantized Σ x̃x̃ᵀ, cross Σ x̃xᵀ, reference Σ xxᵀ.</summary>
public sealed record GroupGrams(float[] Quantized, float[] Cross, float[] Reference);

/// <summary>
/// The Gram matrices of one Conv/Gemm/MatMul's input patches, per group, computed in ONNX Runtime by a small model of
/// its own: it takes the layer's input as the FP32 model computes it (x) and as the quantized model does (x̃), and returns
/// Σ x̃x̃ᵀ, Σ x̃xᵀ and Σ xxᵀ over every patch. For a Conv the patches come from a Conv with one-hot kernels and the node's
/// own strides, pads, dilations and groups (its output channel g·K + j is patch element j of group g), so padding and
/// striding are exactly the node's; each Gram is one batched MatMul of patches with patches transposed. No patch tensor
/// leaves ONNX Runtime.
/// </summary>
public static class InputGram
{
    public const string ReferenceInput = "ptq_reference_input", QuantizedInput = "ptq_quantized_input";
    public const string QuantizedOutput = "ptq_gram_quantized", CrossOutput = "ptq_gram_cross", ReferenceOutput = "ptq_gram_reference";

    public static ModelProto Build(NodeProto node, int[] weightShape, WeightRows rows, long opset = 13)
    {
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "input_gram" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Math.Max(13, opset) });
        var graph = new OnnxGraph(model);
        foreach (var name in new[] { ReferenceInput, QuantizedInput })
            graph.Graph.Input.Add(new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementType.Float } } });
        int groups = rows.Groups, k = rows.K;
        string Shape(string name, params long[] dims)
        {
            string n = graph.UniqueName(name);
            graph.AddInitializer(TensorData.FromInt64(n, [dims.Length], dims));
            return n;
        }
        string Add(string op, string[] inputs, params AttributeProto[] attributes)
        {
            string output = graph.UniqueName(op);
            graph.AddNode(NodeAttributes.Node(op, graph.UniqueName(op + "_node"), inputs, [output], attributes));
            return output;
        }
        string kernel = "", split = Shape("split", 0, groups, k, -1), grouped = Shape("patches", groups, k, -1), flat = Shape("rows", -1, k);
        if (node.OpType == "Conv")
        {
            var oneHot = new float[groups * k * k];
            for (int g = 0; g < groups; g++)
                for (int j = 0; j < k; j++) oneHot[(g * k + j) * k + j] = 1;
            kernel = graph.UniqueName("one_hot");
            graph.AddInitializer(TensorData.FromFloats(kernel, [groups * k, .. weightShape[1..]], oneHot));
        }
        var attributes = node.Attribute.Where(a => a.Name is "strides" or "pads" or "dilations" or "group" or "auto_pad" or "kernel_shape").Select(a => a.Clone()).ToArray();
        string Patches(string x)  // [groups, K, positions]
        {
            if (node.OpType == "Conv")
            {
                string columns = Add("Conv", [x, kernel], attributes);      // [N, g·K, spatial…]
                string moved = Add("Transpose", [Add("Reshape", [columns, split])], NodeAttributes.Ints("perm", [1, 2, 0, 3]));
                return Add("Reshape", [moved, grouped]);
            }
            string transposed = Add("Transpose", [Add("Reshape", [x, flat])], NodeAttributes.Ints("perm", [1, 0]));   // [K, M]
            return Add("Reshape", [transposed, grouped]);
        }
        string reference = Patches(ReferenceInput), quantized = Patches(QuantizedInput);
        string Across(string p) => Add("Transpose", [p], NodeAttributes.Ints("perm", [0, 2, 1]));
        string referenceT = Across(reference);
        foreach (var (left, right, output) in new[] { (quantized, Across(quantized), QuantizedOutput), (quantized, referenceT, CrossOutput), (reference, referenceT, ReferenceOutput) })
        {
            graph.AddNode(NodeAttributes.Node("MatMul", graph.UniqueName("gram_node"), [left, right], [output]));
            graph.AddOutput(output);
        }
        return model;
    }

    /// <summary>A copy of <paramref name="model"/> cut down to what <paramref name="tensor"/> needs, with it as the only output.</summary>
    public static ModelProto Prefix(ModelProto model, string tensor)
    {
        var copy = model.Clone();
        var graph = new OnnxGraph(copy);
        copy.Graph.Output.Clear();
        if (graph.IsGraphInput(tensor))
        {
            // The layer reads the model input itself: pass it through.
            string through = graph.UniqueName(tensor + "_passed");
            graph.AddNode(NodeAttributes.Node("Identity", graph.UniqueName("pass"), [tensor], [through]));
            tensor = through;
        }
        graph.AddOutput(tensor);
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
        return copy;
    }

    /// <summary>Σ over the batches of each group's three Grams (summed in double, returned in float).</summary>
    /// <param name="layerInputs">Each batch's layer input from the FP32 model and from the quantized model.</param>
    /// <param name="window">Kernel elements per input element (1 for Gemm/MatMul): a sample's patches are about its input × this.</param>
    /// <param name="budgetBytes">Batches are cut so that one run's patch tensors (two inputs, a few copies each) stay about within this.</param>
    public static GroupGrams[] Collect(ModelProto gramModel, IEnumerable<(FloatTensor Reference, FloatTensor Quantized)> layerInputs, WeightRows rows, RunnerOptions options,
        int window = 1, long budgetBytes = long.MaxValue)
    {
        int kk = rows.K * rows.K, size = rows.Groups * kk;
        string[] outputs = [QuantizedOutput, CrossOutput, ReferenceOutput];
        var sums = outputs.Select(_ => new double[size]).ToArray();
        using (var runner = OrtRunner.FromModel(gramModel, options, "input Gram model"))
            foreach (var (x, xq) in layerInputs)
            {
                // Two inputs' patches, each reshaped and transposed once more: about six copies of one sample's patches.
                long perSample = Math.Max(1L, (long)x.SampleSize * window * sizeof(float) * 6);
                int step = (int)Math.Clamp(budgetBytes / perSample, 1, Math.Max(1, x.Batch));
                for (int start = 0; start < x.Batch; start += step)
                {
                    int count = Math.Min(step, x.Batch - start);
                    var (a, b) = count == x.Batch ? (x, xq) : (x.Slice(start, count), xq.Slice(start, count));
                    var result = runner.Run(new Dictionary<string, FloatTensor> { [ReferenceInput] = a, [QuantizedInput] = b }, outputs);
                    for (int o = 0; o < outputs.Length; o++)
                    {
                        var g = result[outputs[o]].Data;
                        for (int i = 0; i < size; i++) sums[o][i] += g[i];
                    }
                }
            }
        float[] Part(double[] sum, int g) => sum.AsSpan(g * kk, kk).ToArray().Select(v => (float)v).ToArray();
        return Enumerable.Range(0, rows.Groups).Select(g => new GroupGrams(Part(sums[0], g), Part(sums[1], g), Part(sums[2], g))).ToArray();
    }
}
