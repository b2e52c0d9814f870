using System.Text.Json.Nodes;
using PtqTool.Evaluation;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Distill;

namespace PtqTool.Tests.Onnx;

/// <summary>Exporter patterns (Constant weights, hard sigmoids in every spelling, scalar scaling) normalized and quantized to integer kernels.</summary>
public class GraphNormalizerTests
{
    private static FloatTensor Input(int[] shape, int seed)
    {
        var rng = new Random(seed);
        return new FloatTensor(Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(rng.NextDouble() * 6 - 3)).ToArray(), shape);
    }

    private static void AssertSameOutputs(ModelProto a, ModelProto b, int[] shape, float tolerance)
    {
        using var ra = OrtRunner.FromModel(a);
        using var rb = OrtRunner.FromModel(b);
        var x = Input(shape, 3);
        var oa = ra.Run(x)[ra.OutputNames[0]].Data;
        var ob = rb.Run(x)[rb.OutputNames[0]].Data;
        for (int i = 0; i < oa.Length; i++) Assert.Equal(oa[i], ob[i], tolerance);
    }

    /// <summary>Moves every initializer into a Constant node, as paddle2onnx and older exporters write weights.</summary>
    private static ModelProto WithConstantWeights(ModelProto model)
    {
        var copy = model.Clone();
        foreach (var t in copy.Graph.Initializer.ToList())
            copy.Graph.Node.Insert(0, NodeAttributes.Node("Constant", t.Name + "_const", [], [t.Name], NodeAttributes.Tensor("value", t)));
        copy.Graph.Initializer.Clear();
        return copy;
    }

    private static (JsonNode Report, string Output) Quantize(ModelProto model, params string[] extra)
    {
        string dir = Repo.TempDir(), path = Path.Combine(dir, "m.onnx"), output = Path.Combine(dir, "q.onnx"), report = Path.Combine(dir, "r.json");
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(model));
        var (code, _, err) = CliRunner.Run(["quantize", path, "--synthetic", "gaussian", "--count", "16", "--out", output, "--report", report, "--quiet", .. extra]);
        Assert.True(code == 0, err);
        return (JsonNode.Parse(File.ReadAllText(report))!, output);
    }

    [Fact]
    public void Constant_weights_become_weights_and_their_batchnorm_folds()
    {
        int[] shape = [1, 3, 12, 12];
        var m = new TinyModels(shape, seed: 4, opset: 9);
        var y = m.Op("Relu", [m.BatchNorm(m.Conv("x", 3, 8, 3), 8)]);
        var model = WithConstantWeights(m.Finish(m.Conv(y, 8, 4, 1)));
        var normalized = new OnnxGraph(model.Clone());
        OpsetUpgrade.ToOpset13(normalized, "m");
        var summary = GraphNormalizer.Normalize(normalized);
        Assert.DoesNotContain(normalized.Graph.Node, n => n.OpType == "Constant");
        Assert.True(summary.Changes["Constant → initializer"] >= 8);
        var folded = new OnnxGraph(normalized.Model.Clone());
        Assert.Equal(1, BatchNormFolding.Fold(folded));
        AssertSameOutputs(model, folded.Model, shape, 2e-5f);

        var (report, _) = Quantize(model);
        Assert.True(report["rewrite"]!["quantized_weights"]!.GetValue<int>() == 2, report.ToJsonString());
        Assert.Equal(1, report["rewrite"]!["folded_batchnorms"]!.GetValue<int>());
        Assert.Equal(9, report["model"]!["opset"]!.GetValue<int>());
        // The first Conv fuses; the last one writes the float graph output (no quantizer after it to fuse with).
        Assert.Equal(1, report["rewrite"]!["onnxruntime_ops"]!["QLinearConv"]!.GetValue<int>());
    }

    public static IEnumerable<object[]> HardSwishSpellings() => [["HardSigmoid node"], ["x*relu6(x+3)/6"], ["clip(x/6+0.5, 0, 1)"]];

    [Theory]
    [MemberData(nameof(HardSwishSpellings))]
    public void Hard_swish_in_any_spelling_runs_on_integer_kernels(string spelling)
    {
        int[] shape = [1, 4, 10, 10];
        var m = new TinyModels(shape, seed: 7, opset: 11);
        string x = m.Conv("x", 4, 8, 3, pads: [1, 1, 1, 1]);
        string hs = spelling switch
        {
            "HardSigmoid node" => m.Op("Mul", [x, m.Op("HardSigmoid", [x], NodeAttributes.Float("alpha", 1 / 6f), NodeAttributes.Float("beta", 0.5f))]),
            "x*relu6(x+3)/6" => m.Op("Div", [m.Op("Mul", [x, m.Op("Clip", [m.Op("Add", [x, m.ConstValues([], [3])]), m.ConstValues([], [0]), m.ConstValues([], [6])])]), m.ConstValues([], [6])]),
            _ => m.Op("Mul", [x, m.Op("Clip", [m.Op("Add", [m.Op("Mul", [x, m.ConstValues([], [1 / 6f])]), m.ConstValues([], [0.5f])]), m.ConstValues([], [0]), m.ConstValues([], [1])])]),
        };
        var model = m.Finish(m.Conv(hs, 8, 4, 1));
        var normalized = new OnnxGraph(model.Clone());
        GraphNormalizer.Normalize(normalized);
        Assert.DoesNotContain(normalized.Graph.Node, n => n.OpType is "HardSigmoid" or "Div");
        AssertSameOutputs(model, normalized.Model, shape, 1e-5f);

        var (report, output) = Quantize(model);
        var ops = report["rewrite"]!["onnxruntime_ops"]!.AsObject().Select(kv => kv.Key).ToList();
        Assert.Contains("QLinearMul", ops);
        Assert.DoesNotContain("HardSigmoid", ops);
        Assert.DoesNotContain("Mul", ops);
        Assert.DoesNotContain("Add", ops);
        Assert.DoesNotContain("Div", ops);
        Assert.True(report["evaluation_exact"]!["output_sqnr_db"]!.GetValue<double>() > 25);
    }

    [Fact]
    public void A_multiplication_by_a_positive_scalar_is_read_from_its_input_codes()
    {
        int[] shape = [1, 4, 10, 10];
        var m = new TinyModels(shape, seed: 8, opset: 13);
        string scaled = m.Op("Mul", [m.ConstValues([], [0.25f]), m.Op("Relu", [m.Conv("x", 4, 8, 3)])]);
        var model = m.Finish(m.Conv(scaled, 8, 4, 1));
        // Kept: by default the Mul would be folded into the unpadded 1×1 Conv after it (AffineFoldingTests).
        var (report, output) = Quantize(model, "--keep-affine");
        var q = OnnxModelFile.Load(output);
        Assert.DoesNotContain(q.Graph.Node, n => n.OpType == "Mul");
        // The DequantizeLinear that stands for y = 0.25·x reads x's codes with 0.25 × x's scale.
        var g = new OnnxGraph(q);
        var dqs = q.Graph.Node.Where(n => n.OpType == "DequantizeLinear" && g.Producer(n.Input[0]) is { OpType: "QuantizeLinear" }).ToList();
        var scales = dqs.Select(n => (Q: g.Producer(n.Input[0])!, Dq: n)).Select(p => (
            Q: TensorData.ToFloats(g.Initializer(p.Q.Input[1])!)[0], Dq: TensorData.ToFloats(g.Initializer(p.Dq.Input[1])!)[0])).ToList();
        Assert.Contains(scales, s => Math.Abs(s.Dq - 0.25f * s.Q) <= 1e-7f * s.Q);
        Assert.True(report["evaluation_exact"]!["output_sqnr_db"]!.GetValue<double>() > 30);
    }

    [Fact]
    public void Constant_inputs_of_add_and_mul_are_quantized_so_they_fuse()
    {
        int[] shape = [1, 4, 10, 10];
        var m = new TinyModels(shape, seed: 9, opset: 13);
        string x = m.Conv("x", 4, 8, 3);
        string biased = m.Op("Add", [x, m.Const([1, 8, 1, 1], () => 0.3f)]);
        string scaled = m.Op("Mul", [biased, m.Const([1, 8, 1, 1], () => -0.7f)]);
        // Kept: by default both would be folded into the Conv before them (AffineFoldingTests).
        var (report, _) = Quantize(m.Finish(m.Conv(scaled, 8, 4, 1)), "--keep-affine");
        var ops = report["rewrite"]!["onnxruntime_ops"]!.AsObject();
        Assert.Equal(1, ops["QLinearAdd"]!.GetValue<int>());
        Assert.Equal(1, ops["QLinearMul"]!.GetValue<int>());
        Assert.False(ops.ContainsKey("Add") || ops.ContainsKey("Mul"));
    }
}
