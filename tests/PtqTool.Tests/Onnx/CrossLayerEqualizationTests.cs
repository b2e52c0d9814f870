using System.Text.Json.Nodes;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Distill;

namespace PtqTool.Tests.Onnx;

public class CrossLayerEqualizationTests
{
    /// <summary>Conv → Relu → depthwise Conv → Relu → Conv → Clip(0, 6) → Conv, with output channels of very different ranges.</summary>
    private static ModelProto Chain(out string clipped)
    {
        var m = new TinyModels([2, 3, 10, 10], seed: 5);
        string a = m.Op("Relu", [m.Conv("x", 3, 8, 3, pads: [1, 1, 1, 1])]);
        string b = m.Op("Relu", [m.Conv(a, 8, 8, 3, group: 8, pads: [1, 1, 1, 1])]);
        clipped = m.Op("Clip", [m.Conv(b, 8, 6, 1), m.ConstValues([], [0f]), m.ConstValues([], [6f])]);
        var model = m.Finish(m.Conv(clipped, 6, 4, 1));
        // Channel c of every weight scaled by 4^(c mod 4 - 2): ranges over a factor of 64, as depthwise layers have.
        var initializers = model.Graph.Initializer;
        for (int k = 0; k < initializers.Count; k++)
        {
            var t = initializers[k];
            if (t.Dims.Count != 4) continue;
            var v = TensorData.ToFloats(t);
            int per = v.Length / (int)t.Dims[0];
            for (int i = 0; i < v.Length; i++) v[i] *= MathF.Pow(4, i / per % 4 - 2);
            initializers[k] = TensorData.FromFloats(t.Name, TensorData.Shape(t), v);
        }
        return model;
    }

    private static float[] Run(ModelProto model, FloatTensor x)
    {
        using var ort = OrtRunner.FromModel(model);
        return ort.Run(x)[ort.OutputNames[0]].Data;
    }

    [Fact]
    public void Equalization_leaves_the_float_outputs_equal_and_balances_each_pair()
    {
        var model = Chain(out _);
        var rng = new Random(3);
        var x = new FloatTensor(Enumerable.Range(0, 2 * 3 * 10 * 10).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), [2, 3, 10, 10]);
        var before = Run(model, x);
        var graph = new OnnxGraph(model.Clone());
        var pairs = CrossLayerEqualization.Apply(graph);
        // Conv→Relu→dw and dw→Relu→Conv; the Clip (ReLU6) pair is not positively homogeneous and stays as it was.
        Assert.Equal(2, pairs.Count);
        var after = Run(graph.Model, x);
        double scale = before.Max(Math.Abs);
        for (int i = 0; i < before.Length; i++) Assert.True(Math.Abs(before[i] - after[i]) <= 1e-5 * scale, $"output {i}: {before[i]} vs {after[i]}");

        // Each pair's output ranges of the first Conv now equal the input ranges of the second, channel by channel
        // (to the settling tolerance), where before they differed by up to 64x.
        foreach (var p in pairs)
        {
            var first = graph.Graph.Node.Single(n => n.Name == p.First);
            var second = graph.Graph.Node.Single(n => n.Name == p.Second);
            var w1 = graph.InitializerFloats(first.Input[1]);
            var w2t = graph.Initializer(second.Input[1])!;
            var w2 = TensorData.ToFloats(w2t);
            int per1 = w1.Length / p.Channels, columns = (int)w2t.Dims[1], kernel = (int)(w2t.Dims[2] * w2t.Dims[3]), outputs = (int)w2t.Dims[0];
            int groups = p.Channels / columns;
            var r1 = new double[p.Channels];
            var r2 = new double[p.Channels];
            for (int i = 0; i < w1.Length; i++) r1[i / per1] = Math.Max(r1[i / per1], Math.Abs(w1[i]));
            for (int i = 0; i < w2.Length; i++)
            {
                int o = i / (columns * kernel), c = o / (outputs / groups) * columns + i % (columns * kernel) / kernel;
                r2[c] = Math.Max(r2[c], Math.Abs(w2[i]));
            }
            for (int c = 0; c < p.Channels; c++) Assert.True(Math.Abs(Math.Log(r1[c] / r2[c])) < 1e-3, $"{p.First} -> {p.Second} channel {c}: {r1[c]} vs {r2[c]}");
        }
        // The last Conv, behind the Clip, was not touched.
        var last = graph.Graph.Node.Last(n => n.OpType == "Conv");
        Assert.Equal(TensorData.ToFloats(model.Graph.Initializer.Single(t => t.Name == last.Input[1])), graph.InitializerFloats(last.Input[1]));
    }

    [Fact]
    public void Quantize_equalize_reports_the_pairs_and_refuses_statistics_collected_without_it()
    {
        string dir = Repo.TempDir(), stats = Path.Combine(dir, "s.json"), report = Path.Combine(dir, "r.json");
        var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_resnet"), "--calib", Repo.CalibDir, "--limit", "32", "--refine", "off", "--equalize",
            "--out", Path.Combine(dir, "q.onnx"), "--report", report, "--quiet");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(File.ReadAllText(report))!;
        Assert.True(json["options"]!["equalize"]!.GetValue<bool>());
        // The ResNet's residual blocks: conv1 → Relu → conv2 in each, the stem's Conv → Relu feeds a join, not a Conv.
        int expected = CrossLayerEqualization.Pairs(Folded(Repo.Model("fmnist_resnet"))).Count;
        Assert.True(expected > 0);
        Assert.Equal(expected, json["rewrite"]!["equalized_pairs"]!.GetValue<int>());
        // Per-layer errors are measured against the equalized float graph: the first Conv of each pair has rescaled
        // output channels, so against the original model its tensor would differ by far more than rounding. Every
        // tensor's SQNR stays above 20 dB and within 6 dB of where an unequalized run puts it.
        var (unequalizedCode, _, unequalizedErr) = CliRunner.Run("quantize", Repo.Model("fmnist_resnet"), "--calib", Repo.CalibDir, "--limit", "32", "--refine", "off",
            "--out", Path.Combine(dir, "plain.onnx"), "--report", Path.Combine(dir, "plain.json"), "--quiet");
        Assert.True(unequalizedCode == 0, unequalizedErr);
        var plain = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "plain.json")))!["layers"]!.AsArray().ToDictionary(l => l!["tensor"]!.GetValue<string>(), l => l!["sqnr_db"]!.GetValue<double>());
        var layers = json["layers"]!.AsArray();
        Assert.NotEmpty(layers);
        foreach (var l in layers)
        {
            string tensor = l!["tensor"]!.GetValue<string>();
            double sqnr = l["sqnr_db"]!.GetValue<double>();
            Assert.True(sqnr > 20, $"{tensor}: {sqnr:0.0} dB");
            if (plain.TryGetValue(tensor, out double before)) Assert.True(Math.Abs(sqnr - before) < 6, $"{tensor}: {sqnr:0.0} dB equalized, {before:0.0} dB not");
        }

        Assert.Equal(0, CliRunner.Run("calibrate", Repo.Model("fmnist_resnet"), "--calib", Repo.CalibDir, "--limit", "8", "--stats", stats, "--quiet").Code);
        var refused = CliRunner.Run("quantize", Repo.Model("fmnist_resnet"), "--stats", stats, "--eval", Repo.EvalDir, "--eval-limit", "8", "--equalize", "--out", Path.Combine(dir, "q2.onnx"), "--quiet");
        Assert.Equal(2, refused.Code);
        Assert.Contains("without --equalize", refused.Err);
    }

    private static OnnxGraph Folded(string path)
    {
        var g = OnnxGraph.Load(path);
        BatchNormFolding.Fold(g);
        return g;
    }
}
