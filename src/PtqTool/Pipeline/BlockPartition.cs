using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Pipeline;

/// <summary>
/// Splits a float model into the blocks block reconstruction learns jointly: the stretches of the graph between
/// single-tensor cuts (<see cref="GraphCuts"/>), each with its learned weights. A residual block (two Convs and the Add
/// of the skip path) is one block because the skip path is live across it; a plain Conv → Relu → Pool chain is cut
/// after every layer. Stretches with no learned weight join the block before them (the one after, at the start).
/// </summary>
public static class BlockPartition
{
    /// <summary>Blocks with more learned layers than this are learned layer by layer instead (their graph gets large).</summary>
    public const int MaxLayers = 16;

    /// <param name="Nodes">The block's nodes of the float model, in topological order.</param>
    /// <param name="Input">The one tensor the block reads from before it.</param>
    /// <param name="Output">The one tensor everything after it reads (the model's output for the last block).</param>
    /// <param name="Refusal">Why the block cannot be learned jointly (its layers then get AdaRound), or null.</param>
    public sealed record Block(int Index, IReadOnlyList<NodeProto> Nodes, string? Input, string? Output, IReadOnlyList<RoundingStep.Weight> Layers, string? Refusal);

    /// <param name="reference">The float model (BatchNormalization folded), whose nodes the blocks hold.</param>
    /// <param name="learned">The weights to learn, in graph order.</param>
    public static IReadOnlyList<Block> Of(ModelProto reference, IReadOnlyList<RoundingStep.Weight> learned)
    {
        var graph = new OnnxGraph(reference);
        var order = graph.TopologicalOrder();
        var cuts = GraphCuts.Find(graph, order);
        var position = new Dictionary<NodeProto, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < order.Count; i++) position[order[i]] = i;
        // Each learned weight at the position of the first reference node that reads it.
        var layerAt = new Dictionary<int, List<RoundingStep.Weight>>();
        foreach (var w in learned)
        {
            var consumer = graph.Consumers(w.Name).FirstOrDefault();
            if (consumer is null) continue;
            int p = position[consumer];
            if (!layerAt.TryGetValue(p, out var list)) layerAt[p] = list = [];
            list.Add(w);
        }

        // Stretches between cuts: [start, end] with the tensor before and after.
        var dataInputs = graph.DataInputs().Select(i => i.Name).ToList();
        var stretches = new List<(int Start, int End, string? Input, string? Output)>();
        int start = 0;
        string? input = dataInputs.Count == 1 ? dataInputs[0] : null;
        foreach (var cut in cuts)
        {
            stretches.Add((start, cut.After, input, cut.Tensor));
            start = cut.After + 1;
            input = cut.Tensor;
        }
        stretches.Add((start, order.Count - 1, input, graph.Graph.Output.Count == 1 ? graph.Graph.Output[0].Name : null));

        int LayersIn((int Start, int End, string?, string?) s) => Enumerable.Range(s.Start, s.End - s.Start + 1).Sum(p => layerAt.TryGetValue(p, out var l) ? l.Count : 0);
        var blocks = new List<Block>();
        int first = 0;
        for (int k = 0; k < stretches.Count; k++)
        {
            // Close the block at the end of this stretch when it has a layer and the next stretch brings its own.
            bool last = k == stretches.Count - 1;
            int have = Enumerable.Range(first, k - first + 1).Sum(j => LayersIn(stretches[j]));
            if (!last && (have == 0 || LayersIn(stretches[k + 1]) == 0)) continue;
            var (s0, e0) = (stretches[first].Start, stretches[k].End);
            var nodes = order.GetRange(s0, e0 - s0 + 1);
            var layers = Enumerable.Range(s0, e0 - s0 + 1).SelectMany(p => layerAt.TryGetValue(p, out var l) ? l : []).ToList();
            string? refusal = stretches[first].Input is null ? "the block does not start at a single input"
                : stretches[k].Output is null ? "the block does not end at a single output"
                : layers.Count > MaxLayers ? $"{layers.Count} layers between single-tensor cuts (more than {MaxLayers})"
                : null;
            if (layers.Count > 0) blocks.Add(new Block(blocks.Count, nodes, stretches[first].Input, stretches[k].Output, layers, refusal));
            first = k + 1;
        }
        return blocks;
    }
}
