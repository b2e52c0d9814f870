using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Pipeline;
using PtqTool.Tests.Distill;

namespace PtqTool.Tests.Onnx;

public class GraphCutsTests
{
    /// <summary>stem Conv → Relu → [Conv → Relu → Conv, + skip] → Relu → [two branches joined by Concat] → Flatten → Gemm.</summary>
    private static (ModelProto Model, string[] Convs, string Gemm, Dictionary<string, string> Tensors) Residual()
    {
        var m = new TinyModels([2, 3, 8, 8], 1);
        var convs = new List<string>();
        string Conv(string x, int inC, int outC)
        {
            string w = m.Weight(outC, inC, 3, 3);
            convs.Add(w);
            return m.Op("Conv", [x, w, m.Weight(outC)], NodeAttributes.Ints("pads", [1, 1, 1, 1]));
        }
        string stem = m.Op("Relu", [Conv("x", 3, 4)]);
        string inner = m.Op("Relu", [Conv(stem, 4, 4)]);
        string block = m.Op("Relu", [m.Op("Add", [Conv(inner, 4, 4), stem])]);
        string left = Conv(block, 4, 2), right = m.Op("Sigmoid", [block]);
        string joined = m.Op("Concat", [left, right], NodeAttributes.Int("axis", 1));
        string gemm = m.Weight(6 * 64, 5);
        string flat = m.Op("Flatten", [joined]);
        string y = m.Op("Gemm", [flat, gemm]);
        return (m.Finish(y), [.. convs], gemm, new Dictionary<string, string> { ["stem"] = stem, ["inner"] = inner, ["block"] = block, ["joined"] = joined, ["flat"] = flat });
    }

    [Fact]
    public void Cuts_are_exactly_the_boundaries_where_one_tensor_is_live()
    {
        var (model, _, _, t) = Residual();
        var graph = new OnnxGraph(model);
        var order = graph.TopologicalOrder();
        var cuts = GraphCuts.Find(graph, order);
        // Brute force: the set of non-constant tensors produced at or before b (or graph inputs) and read after b.
        var expected = new List<(int, string)>();
        for (int b = 0; b < order.Count - 1; b++)
        {
            var before = new HashSet<string>(order.Take(b + 1).SelectMany(n => n.Output)) { "x" };
            var live = order.Skip(b + 1).SelectMany(n => n.Input).Where(before.Contains).Distinct().ToList();
            if (live.Count == 1) expected.Add((b, live[0]));
        }
        Assert.Equal(expected, cuts.Select(c => (c.After, c.Tensor)));
        var tensors = cuts.Select(c => c.Tensor).ToHashSet();
        Assert.Contains(t["stem"], tensors);
        Assert.Contains(t["block"], tensors);
        Assert.Contains(t["joined"], tensors);
        Assert.DoesNotContain(t["inner"], tensors);   // the skip path is live beside it
    }

    [Fact]
    public void Blocks_hold_a_residual_block_whole_and_every_learned_weight_once()
    {
        var (model, convs, gemm, t) = Residual();
        var graph = new OnnxGraph(model);
        var weights = convs.Append(gemm).Select(name =>
        {
            var node = graph.Consumers(name).Single();
            return new RoundingStep.Weight(new PtqTool.Rewrite.WeightUse(node, 1, 0, 2), name, graph.InitializerFloats(name), TensorData.Shape(graph.Initializer(name)!), node.Input[0]);
        }).ToList();
        var blocks = BlockPartition.Of(model, weights);
        // Stretches without a weight (the Relu after the Add, the Flatten) join the block before them.
        Assert.Equal(["x", t["stem"], t["block"], t["flat"]], blocks.Select(b => b.Input));
        Assert.Equal([1, 2, 1, 1], blocks.Select(b => b.Layers.Count));
        Assert.Equal(weights.Select(w => w.Name), blocks.SelectMany(b => b.Layers).Select(w => w.Name));
        Assert.All(blocks, b => Assert.Null(b.Refusal));
        Assert.Equal(graph.Graph.Node.Count, blocks.Sum(b => b.Nodes.Count));   // Flatten etc. join a block
        Assert.Equal(blocks.Skip(1).Select(b => b.Input), blocks.SkipLast(1).Select(b => b.Output));
        Assert.Equal(graph.Graph.Output[0].Name, blocks[^1].Output);
    }
}
