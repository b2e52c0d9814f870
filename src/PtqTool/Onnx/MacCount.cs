using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>
/// Multiply-adds per sample of every Conv, ConvTranspose, Gemm and MatMul, from the shapes ONNX Runtime gives their
/// inputs and outputs on one batch: Conv and MatMul/Gemm cost one MAC per output element and reduced input value
/// (Conv: Cin/group × kernel window; Gemm/MatMul: K), ConvTranspose one per input element and weight of its group.
/// </summary>
public static class MacCount
{
    public static bool Counts(NodeProto node) => node.OpType is "Conv" or "ConvTranspose" or "Gemm" or "MatMul";

    /// <returns>Every counted node with its MACs per sample, in graph order.</returns>
    public static IReadOnlyList<(NodeProto Node, long Macs)> PerSample(ModelProto model, ModelFeed batch, RunnerOptions? options = null)
    {
        var copy = model.Clone();
        var graph = new OnnxGraph(copy);
        var nodes = graph.Graph.Node.Where(Counts).ToList();
        var wanted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in nodes)
        {
            wanted.Add(n.Input[0]);
            wanted.Add(n.Output[0]);
        }
        foreach (var t in wanted)
            if (!graph.IsGraphOutput(t) && graph.Initializer(t) is null && !graph.IsGraphInput(t)) graph.AddOutput(t);
        var shapes = new Dictionary<string, int[]>(StringComparer.Ordinal);
        using (var runner = OrtRunner.FromModel(copy, options ?? new RunnerOptions(), "model (counting multiply-adds)"))
        {
            // One sample is enough (a model with a fixed batch gets that batch).
            int fixedBatch = runner.FixedBatch;
            batch = fixedBatch > 0 ? (batch.Batch > fixedBatch ? batch.Slice(0, fixedBatch) : batch) : batch.Slice(0, 1);
            foreach (var name in runner.InputNames.Where(wanted.Contains)) shapes[name] = batch[name].Shape;
            var outputs = runner.OutputNames.Where(wanted.Contains).ToList();
            runner.Visit(batch, outputs, (name, _, shape) => shapes[name] = shape);
        }
        int samples = Math.Max(1, batch.Batch);  // the batch actually run
        long Elements(string t) => shapes.TryGetValue(t, out var s) ? s.Aggregate(1L, (a, b) => a * b)
            : throw new PtqException($"counting multiply-adds: no shape for '{t}'");
        var result = new List<(NodeProto, long)>();
        foreach (var n in nodes)
        {
            long macs = n.OpType switch
            {
                "Conv" => Elements(n.Output[0]) * WeightsPerLeadingIndex(graph, n),
                "ConvTranspose" => Elements(n.Input[0]) * WeightsPerLeadingIndex(graph, n),
                _ => Elements(n.Output[0]) * Reduced(graph, n, shapes),
            };
            result.Add((n, macs / samples));
        }
        return result;
    }

    /// <summary>
    /// The weights behind one index of the weight's first axis: Conv [Cout, Cin/group, k…] reduces Cin/group × window
    /// values per output element; ConvTranspose [Cin, Cout/group, k…] meets Cout/group × window weights per input element.
    /// </summary>
    private static long WeightsPerLeadingIndex(OnnxGraph graph, NodeProto n) => WeightShape(graph, n)[1..].Aggregate(1L, (a, b) => a * b);

    /// <summary>Gemm/MatMul: K, the reduced axis of A (Gemm: transA swaps A's two axes).</summary>
    private static long Reduced(OnnxGraph graph, NodeProto n, Dictionary<string, int[]> shapes)
    {
        int[] a = graph.Initializer(n.Input[0]) is { } t ? TensorData.Shape(t) : shapes[n.Input[0]];
        if (n.OpType == "Gemm" && NodeAttributes.GetInt(n, "transA", 0) == 1) return a[0];
        return a[^1];
    }

    private static int[] WeightShape(OnnxGraph graph, NodeProto n) =>
        graph.Initializer(n.Input[1]) is { } w ? TensorData.Shape(w)
            : throw new PtqException($"counting multiply-adds: {n.OpType} '{n.Name}' has no constant weight");
}
