using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Pipeline;

/// <summary>
/// Splits a float model into the blocks block reconstruction learns jointly: the stretches of the graph between
/// single-tensor cuts (<see cref="GraphCuts"/>), each with its learned weights. A residual block (two Convs and the Add
/// of the skip path) is one block because the skip path is live across it; a plain Conv → Relu → Pool chain is cut
/// after every layer. Stretches with no learned weight join the block before them (the one after, at the start).
/// Tensors that no learned weight reaches (side tensors: a transformer's attention mask, computed once from a graph
/// input and read by every layer) may be live across a cut; a block reads them as side inputs, and the nodes that
/// compute them stay outside every block. So a BERT-class encoder is cut at each attention and each FFN sub-block.
/// </summary>
public static class BlockPartition
{
    /// <summary>Blocks with more learned layers than this are learned layer by layer instead (their graph gets large).</summary>
    public const int MaxLayers = 16;

    /// <param name="Nodes">The block's nodes of the float model, in topological order (those a learned weight reaches).</param>
    /// <param name="Input">The tensor the block continues (the first of <paramref name="Inputs"/>), or null where the block does not start at one.</param>
    /// <param name="Output">The one tensor everything after it reads (the model's output for the last block).</param>
    /// <param name="Refusal">Why the block cannot be learned jointly (its layers then get AdaRound), or null.</param>
    /// <param name="Inputs">Every tensor the block's nodes read from before it: <paramref name="Input"/> first where there is one, then side tensors.</param>
    public sealed record Block(int Index, IReadOnlyList<NodeProto> Nodes, string? Input, string? Output, IReadOnlyList<RoundingStep.Weight> Layers, string? Refusal,
        IReadOnlyList<string> Inputs);

    /// <param name="reference">The float model (BatchNormalization folded), whose nodes the blocks hold.</param>
    /// <param name="learned">The weights to learn, in graph order.</param>
    public static IReadOnlyList<Block> Of(ModelProto reference, IReadOnlyList<RoundingStep.Weight> learned)
    {
        var graph = new OnnxGraph(reference);
        var order = graph.TopologicalOrder();
        // The tensors a learned weight reaches. Every other computed tensor (and graph input) is a side tensor, unless a
        // learned layer reads it: the data path before the first layer is no side tensor.
        var weightNames = learned.Select(w => w.Name).ToHashSet(StringComparer.Ordinal);
        var reached = Distill.ReverseMode.Dependents(order, weightNames);
        var layerInputs = order.Where(n => n.Input.Any(weightNames.Contains)).SelectMany(n => n.Input).ToHashSet(StringComparer.Ordinal);
        var side = new HashSet<string>(order.SelectMany(n => n.Output).Concat(graph.DataInputs().Select(i => i.Name))
            .Where(t => t.Length > 0 && !reached.Contains(t) && !layerInputs.Contains(t)), StringComparer.Ordinal);
        var cuts = GraphCuts.Find(graph, order, side);
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
            var nodes = order.GetRange(s0, e0 - s0 + 1).Where(n => n.Output.Any(reached.Contains)).ToList();
            var layers = Enumerable.Range(s0, e0 - s0 + 1).SelectMany(p => layerAt.TryGetValue(p, out var l) ? l : []).ToList();
            string? continued = stretches[first].Input is { } cut && reached.Contains(cut) ? cut : null;
            var inputs = Inputs(graph, nodes, continued);
            // A stretch from the graph's start continues no computed tensor: it continues what its first layer reads.
            if (continued is null && layers.Count > 0 && nodes.FirstOrDefault(n => n.Input.Contains(layers[0].Name))?.Input.FirstOrDefault(inputs.Contains) is { } read)
            {
                continued = read;
                inputs.Remove(read);
                inputs.Insert(0, read);
            }
            string? refusal = continued is null ? "the block does not start at a single input"
                : stretches[k].Output is null ? "the block does not end at a single output"
                : layers.Count > MaxLayers ? $"{layers.Count} layers between single-tensor cuts (more than {MaxLayers})"
                : null;
            if (layers.Count > 0) blocks.Add(new Block(blocks.Count, nodes, continued, stretches[k].Output, layers, refusal, inputs));
            first = k + 1;
        }
        return blocks;
    }

    /// <summary>The non-constant tensors <paramref name="nodes"/> read that none of them computes: <paramref name="first"/> first.</summary>
    private static List<string> Inputs(OnnxGraph graph, IReadOnlyList<NodeProto> nodes, string? first)
    {
        var produced = new HashSet<string>(nodes.SelectMany(n => n.Output), StringComparer.Ordinal);
        var inputs = new List<string>();
        if (first is not null) inputs.Add(first);
        foreach (var n in nodes)
            foreach (var t in n.Input)
                if (t.Length > 0 && !produced.Contains(t) && !inputs.Contains(t) && graph.ConstantValue(t) is null) inputs.Add(t);
        return inputs;
    }
}
