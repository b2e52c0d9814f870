using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Distill;

namespace PtqTool.Tests.Onnx;

public class AffineFoldingTests
{
    /// <summary>
    /// PP-LCNetV3's pattern and its near misses: Conv(pad 1) → Mul(scalar, constant first) → Add(per channel) → Relu →
    /// Mul(1/6) → Mul(0.7) → Add(0.2) → Conv 1×1 (no padding) → [Mul(1.3) beside a Relu of the same Conv output] → Add →
    /// Relu → Add(0.1) → Conv(pad 1).
    /// </summary>
    private static ModelProto Chain()
    {
        var m = new TinyModels([2, 3, 10, 10], seed: 11);
        string a = m.Conv("x", 3, 8, 3, pads: [1, 1, 1, 1]);
        string m1 = m.Op("Mul", [m.ConstValues([1], [1.7f]), a]);
        string a1 = m.Op("Add", [m1, m.ConstValues([8, 1, 1], [.. Enumerable.Range(0, 8).Select(c => 0.1f * c - 0.3f)])]);
        string h = m.Op("Relu", [a1]);
        string m2 = m.Op("Mul", [h, m.ConstValues([], [1 / 6f])]);
        string m3 = m.Op("Mul", [m.ConstValues([1], [0.7f]), m2]);
        string a2 = m.Op("Add", [m3, m.ConstValues([1], [0.2f])]);
        string b = m.Conv(a2, 8, 6, 1);
        string shared = m.Op("Add", [m.Op("Mul", [b, m.ConstValues([], [1.3f])]), m.Op("Relu", [b])]);
        string shifted = m.Op("Add", [m.Op("Relu", [shared]), m.ConstValues([], [0.1f])]);
        return m.Finish(m.Conv(shifted, 6, 4, 3, pads: [1, 1, 1, 1]));
    }

    private static float[] Run(ModelProto model, FloatTensor x)
    {
        using var ort = OrtRunner.FromModel(model);
        return ort.Run(x)[ort.OutputNames[0]].Data;
    }

    [Fact]
    public void Folding_keeps_onnx_runtime_outputs_equal_and_removes_exactly_the_foldable_nodes()
    {
        var model = Chain();
        var rng = new Random(4);
        var x = new FloatTensor([.. Enumerable.Range(0, 2 * 3 * 10 * 10).Select(_ => (float)(rng.NextDouble() * 2 - 1))], [2, 3, 10, 10]);
        var before = Run(model, x);
        var graph = new OnnxGraph(model.Clone());
        var summary = AffineFolding.Fold(graph);
        // Into the first Conv: Mul(1.7) and the per-channel Add. Merged: Mul(1/6)·Mul(0.7). Into the 1×1 Conv: Add(0.2),
        // then the merged Mul. Left: Mul(1.3) (its Conv output feeds a Relu too) and Add(0.1) (the next Conv pads).
        Assert.Equal(new AffineFoldingSummary(2, 2, 1), summary);
        var ops = graph.Graph.Node.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(1, ops["Mul"]);
        Assert.Equal(2, ops["Add"]);
        Assert.Equal(3, ops["Conv"]);
        Assert.Contains(graph.Graph.Node, n => n.OpType == "Add" && graph.ConstantValue(n.Input[1]) is { } c && TensorData.ToFloats(c)[0] == 0.1f);
        // Every rewritten Conv produces the folded node's output name; nothing else reads the old weights.
        Assert.Equal(graph.Graph.Initializer.Count, graph.Graph.Initializer.Select(i => i.Name).Count(n => graph.Consumers(n).Count > 0));
        var after = Run(graph.Model, x);
        double scale = before.Max(Math.Abs);
        for (int i = 0; i < before.Length; i++) Assert.True(Math.Abs(before[i] - after[i]) <= 1e-5 * scale, $"output {i}: {before[i]} vs {after[i]}");
    }

    [Fact]
    public void A_conv_whose_weight_is_shared_or_whose_constant_is_not_per_channel_or_of_higher_rank_is_left_alone()
    {
        var m = new TinyModels([1, 2, 4, 4], seed: 2);
        string a = m.Conv("x", 2, 4, 3, pads: [1, 1, 1, 1]);
        // [4, 1] broadcasts over the last two axes (height, width), not over channels.
        string wrongAxis = m.Op("Mul", [a, m.ConstValues([4, 1], [1f, 2f, 3f, 4f])]);
        var model = m.Finish(wrongAxis);
        var graph = new OnnxGraph(model.Clone());
        Assert.Equal(0, AffineFolding.Fold(graph).Total);

        // A one-element constant of rank 5 makes the Conv's rank-4 output rank 5: folding it would change the shape.
        var r = new TinyModels([1, 2, 4, 4], seed: 4);
        var higher = new OnnxGraph(r.Finish(r.Op("Mul", [r.Conv("x", 2, 4, 3, pads: [1, 1, 1, 1]), r.ConstValues([1, 1, 1, 1, 1], [2f])])).Clone());
        Assert.Equal(0, AffineFolding.Fold(higher).Total);

        var s = new TinyModels([1, 2, 6, 6], seed: 3);
        string c1 = s.Conv("x", 2, 2, 1);
        var conv = s.Model.Graph.Node.Single(n => n.OpType == "Conv");
        // A second Conv reading the same weight: folding a scale into it would change both.
        string c2 = s.Op("Conv", ["x", conv.Input[1]]);
        string scaled = s.Op("Mul", [c1, s.ConstValues([], [2f])]);
        var shared = new OnnxGraph(s.Finish(s.Op("Add", [scaled, c2])).Clone());
        Assert.Equal(0, AffineFolding.Fold(shared).Total);
    }

    [Fact]
    public void The_report_counts_folded_nodes_and_the_quantized_model_has_none_of_them()
    {
        string dir = Repo.TempDir();
        string model = Path.Combine(dir, "chain.onnx");
        OnnxModelFile.Save(Chain(), model);
        string calib = Path.Combine(dir, "calib");
        Directory.CreateDirectory(calib);
        var rng = new Random(8);
        // The chain's batch is fixed at 2: batches of 2 samples.
        for (int i = 0; i < 8; i++)
            File.WriteAllBytes(Path.Combine(calib, $"s{i:D2}.npy"), PtqTool.Data.NpyReader.Write([.. Enumerable.Range(0, 600).Select(_ => (float)(rng.NextDouble() * 2 - 1))], [2, 3, 10, 10]));
        var (quantized, report, _) = CliRunner.Quantize(dir, "q", model, "--calib", calib, "--batch", "2");
        Assert.Equal(5, report["rewrite"]!["folded_affine_ops"]!.GetValue<int>());
        // The nodes folding removes (found on a copy) are not in the quantized model, whose Convs are the chain's three.
        var folded = new OnnxGraph(Chain());
        var names = folded.Graph.Node.Select(n => n.Name).ToHashSet();
        AffineFolding.Fold(folded);
        names.ExceptWith(folded.Graph.Node.Select(n => n.Name));
        Assert.Equal(5, names.Count);
        Assert.DoesNotContain(quantized.Graph.Node, n => names.Contains(n.Name));
        Assert.Equal(3, quantized.Graph.Node.Count(n => n.OpType == "Conv"));
    }
}
