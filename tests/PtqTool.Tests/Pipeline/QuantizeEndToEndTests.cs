using System.Text.Json;
using PtqTool.Onnx;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Pipeline;

public class QuantizeEndToEndTests
{
    private static (int Code, string Out, string Err, JsonElement Report, string Model) Quantize(string model, string dir, params string[] extra)
    {
        string output = Path.Combine(dir, model + ".int8.onnx"), report = Path.Combine(dir, model + ".json");
        var (code, stdout, stderr) = CliRunner.Run(["quantize", Repo.Model(model), "--calib", Repo.CalibDir, "--out", output, "--report", report, "--quiet", .. extra]);
        JsonElement json = default;
        if (File.Exists(report)) json = JsonDocument.Parse(File.ReadAllText(report)).RootElement.Clone();
        return (code, stdout, stderr, json, output);
    }

    /// <summary>The bundled models at both smooth losses, and the MobileNetV2-style model (BN folded, ReLU6) at the default.</summary>
    public static IEnumerable<object[]> ModelsAndLosses() =>
        (from m in Repo.BundledModels from l in new[] { "msqe", "qsin" } select new object[] { m, l }).Append(["fmnist_mobilenetv2", "msqe"]);

    [Theory]
    [MemberData(nameof(ModelsAndLosses))]
    public void W8a8_top1_drop_is_at_most_half_a_point_by_onnx_runtime(string model, string loss)
    {
        string dir = Repo.TempDir();
        var (code, _, err, report, output) = Quantize(model, dir, "--loss", loss, "--eval", Repo.EvalDir);
        Assert.True(code == 0, err);
        // Recompute both accuracies independently of the report: ONNX Runtime on the saved files.
        var (_, fp32Out, _) = CliRunner.Run("eval", Repo.Model(model), "--eval", Repo.EvalDir, "--quiet");
        var (_, int8Out, _) = CliRunner.Run("eval", output, "--eval", Repo.EvalDir, "--quiet", "--preprocess", "fashion-mnist");
        double fp32 = Top1(fp32Out), int8 = Top1(int8Out);
        Assert.True(fp32 - int8 <= 0.5, $"{model} {loss}: FP32 {fp32}, INT8 {int8}");
        Assert.Equal(fp32, report.GetProperty("evaluation").GetProperty("fp32_top1").GetDouble(), 6);
        Assert.Equal(int8, report.GetProperty("evaluation").GetProperty("int8_top1").GetDouble(), 6);
    }

    private static double Top1(string evalOutput) =>
        double.Parse(System.Text.RegularExpressions.Regex.Match(evalOutput, @"top-1 ([0-9.]+)%").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void Onnx_runtime_fuses_the_qdq_model_into_integer_kernels()
    {
        string dir = Repo.TempDir();
        var (code, _, err, _, output) = Quantize("fmnist_resnet", dir, "--eval-limit", "64");
        Assert.True(code == 0, err);
        var model = OnnxModelFile.Load(output);
        int convs = model.Graph.Node.Count(n => n.OpType == "Conv");
        Assert.Equal(8, convs);
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "BatchNormalization");
        // Count what ONNX Runtime made of it, from the optimized graph it saves itself.
        string optimized = Path.Combine(dir, "optimized.onnx");
        using (OrtRunner.FromFile(output, new RunnerOptions { OptimizedModelPath = optimized })) { }
        var ops = OnnxModelFile.Load(optimized).Graph.Node.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(convs, ops.GetValueOrDefault("QLinearConv"));
        Assert.Equal(3, ops.GetValueOrDefault("QLinearAdd"));
        Assert.Equal(1, ops.GetValueOrDefault("QGemm"));
        Assert.False(ops.ContainsKey("Conv"), "a Conv was left in float");
        Assert.False(ops.ContainsKey("Add"), "an Add was left in float");
    }

    [Fact]
    public void Two_runs_give_byte_identical_models()
    {
        string a = Repo.TempDir(), b = Repo.TempDir();
        var first = Quantize("fmnist_cnn", a, "--loss", "qsin", "--limit", "100", "--eval-limit", "32");
        var second = Quantize("fmnist_cnn", b, "--loss", "qsin", "--limit", "100", "--eval-limit", "32");
        Assert.Equal(0, first.Code);
        Assert.Equal(File.ReadAllBytes(first.Model), File.ReadAllBytes(second.Model));
    }

    [Fact]
    public void Merged_shard_statistics_give_exactly_the_scales_of_a_single_run()
    {
        string dir = Repo.TempDir();
        string model = Repo.Model("fmnist_resnet");
        string[] common = ["--calib", Repo.CalibDir, "--limit", "120", "--batch", "16", "--quiet"];
        Assert.Equal(0, CliRunner.Run(["calibrate", model, .. common, "--stats", Path.Combine(dir, "all.json")]).Code);
        for (int i = 0; i < 3; i++)
            Assert.Equal(0, CliRunner.Run(["calibrate", model, .. common, "--shard", $"{i}/3", "--stats", Path.Combine(dir, $"s{i}.json")]).Code);
        Assert.Equal(0, CliRunner.Run("merge-stats", Path.Combine(dir, "s0.json"), Path.Combine(dir, "s1.json"), Path.Combine(dir, "s2.json"), "--out", Path.Combine(dir, "merged.json")).Code);

        string[] quantize = ["quantize", model, "--eval", Repo.EvalDir, "--eval-limit", "32", "--loss", "msqe", "--bias-correction", "--quiet"];
        Assert.Equal(0, CliRunner.Run([.. quantize, "--stats", Path.Combine(dir, "all.json"), "--out", Path.Combine(dir, "single.onnx")]).Code);
        Assert.Equal(0, CliRunner.Run([.. quantize, "--stats", Path.Combine(dir, "merged.json"), "--out", Path.Combine(dir, "sharded.onnx")]).Code);
        var single = Scales(Path.Combine(dir, "single.onnx"));
        var sharded = Scales(Path.Combine(dir, "sharded.onnx"));
        Assert.NotEmpty(single);
        Assert.Equal(single, sharded);
    }

    private static Dictionary<string, float[]> Scales(string path) =>
        OnnxModelFile.Load(path).Graph.Initializer.Where(t => t.Name.EndsWith("_scale", StringComparison.Ordinal) || t.Name.EndsWith("_zero_point", StringComparison.Ordinal))
            .ToDictionary(t => t.Name, t => TensorData.ToFloats(t));

    [Fact]
    public void Quantized_tensors_reproduce_quantize_linear_semantics()
    {
        // Every activation DQ output must equal s·(clip(round(x/s)+z) − z) of the FP32 tensor feeding its Q.
        string dir = Repo.TempDir();
        var (code, _, err, _, output) = Quantize("fmnist_cnn", dir, "--limit", "64", "--eval-limit", "32");
        Assert.True(code == 0, err);
        var graph = OnnxGraph.Load(output);
        var q = graph.Graph.Node.First(n => n.OpType == "QuantizeLinear" && n.Input[0] == "input");
        var dq = graph.Consumers(q.Output[0]).Single();
        graph.AddOutput(dq.Output[0]);
        float s = TensorData.ToFloats(graph.Initializer(q.Input[1])!)[0];
        var zeroPoint = graph.Initializer(q.Input[2])!;
        int z = (int)TensorData.ToFloats(zeroPoint)[0];
        var (lo, hi) = zeroPoint.DataType == ElementType.UInt8 ? (0, 255) : (-128, 127);
        using var runner = OrtRunner.FromModel(graph.Model);
        var input = Onnx.RoundTripTests.RandomInput(2, 9);
        var got = runner.Run(input, [dq.Output[0]])[dq.Output[0]].Data;
        for (int i = 0; i < got.Length; i++)
        {
            float expected = s * (Math.Clamp(MathF.Round(input.Data[i] / s, MidpointRounding.ToEven) + z, lo, hi) - z);
            Assert.Equal(expected, got[i], 1e-6f);
        }
    }

    [Fact]
    public void Four_bit_activations_stay_inside_the_four_bit_grid()
    {
        string dir = Repo.TempDir();
        var (code, _, err, report, output) = Quantize("fmnist_cnn", dir, "--bits", "4", "--activation-type", "int8", "--limit", "64", "--eval-limit", "32");
        Assert.True(code == 0, err);
        Assert.Contains("int4", report.GetProperty("rewrite").GetProperty("weight_storage").GetString());
        var model = OnnxModelFile.Load(output);
        foreach (var w in model.Graph.Initializer.Where(t => t.DataType == ElementType.Int8 && t.Dims.Count == 4))
            Assert.All(TensorData.ToFloats(w), v => Assert.InRange(v, -7, 7));
        // Expose one activation's Q output: its codes must lie in [−8, 7].
        var graph = new OnnxGraph(model);
        var q = graph.Graph.Node.First(n => n.OpType == "QuantizeLinear" && n.Input[0] != "input");
        graph.AddOutput(q.Output[0], ElementType.Int8);
        using var runner = OrtRunner.FromModel(graph.Model);
        var codes = runner.Run(Onnx.RoundTripTests.RandomInput(4, 5), [q.Output[0]])[q.Output[0]].Data;
        Assert.All(codes, c => Assert.InRange(c, -8, 7));
    }

    [Fact]
    public void Relu6_clips_fold_into_their_quantizers()
    {
        // The CNN with every Relu replaced by Clip(0, 6): quantized, no Clip remains, each folded quantizer's range is
        // [0, ≤ 6], and ONNX Runtime still fuses every Conv.
        string dir = Repo.TempDir(), path = Path.Combine(dir, "relu6.onnx");
        var graph = OnnxGraph.Load(Repo.Model("fmnist_cnn"));
        graph.AddInitializer(TensorData.Scalar("zero", 0f));
        graph.AddInitializer(TensorData.Scalar("six", 6f));
        foreach (var relu in graph.Graph.Node.Where(n => n.OpType == "Relu"))
        {
            relu.OpType = "Clip";
            relu.Input.Add("zero");
            relu.Input.Add("six");
        }
        OnnxModelFile.Save(graph.Model, path);
        File.Copy(Path.ChangeExtension(Repo.Model("fmnist_cnn"), ".json"), Path.ChangeExtension(path, ".json"));
        string output = Path.Combine(dir, "relu6.int8.onnx"), report = Path.Combine(dir, "r.json");
        var (code, _, err) = CliRunner.Run("quantize", path, "--calib", Repo.CalibDir, "--limit", "200", "--eval", Repo.EvalDir, "--eval-limit", "400",
            "--loss", "msqe", "--out", output, "--report", report, "--quiet");
        Assert.True(code == 0, err);
        var q = OnnxGraph.Load(output);
        Assert.DoesNotContain(q.Graph.Node, n => n.OpType == "Clip");
        int checkedQuantizers = 0;
        foreach (var node in q.Graph.Node.Where(n => n.OpType == "QuantizeLinear" && n.Input[0].Contains("Relu", StringComparison.Ordinal)))
        {
            float s = TensorData.ToFloats(q.Initializer(node.Input[1])!)[0];
            float z = TensorData.ToFloats(q.Initializer(node.Input[2])!)[0];
            Assert.Equal(0, z); // uint8: the lowest level is 0.0
            Assert.True(s * (255 - z) <= 6 * (1 + 1e-6), $"{node.Input[0]}: top {s * (255 - z)}");
            checkedQuantizers++;
        }
        Assert.Equal(5, checkedQuantizers);
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(report));
        Assert.Equal(5, json.RootElement.GetProperty("rewrite").GetProperty("folded_activations").GetInt32());
        Assert.Equal(5, json.RootElement.GetProperty("rewrite").GetProperty("onnxruntime_ops").GetProperty("QLinearConv").GetInt32());
        Assert.True(json.RootElement.GetProperty("evaluation").GetProperty("top1_drop").GetDouble() <= 0.5);
    }

    [Fact]
    public void Excluded_nodes_stay_in_float_by_name_or_op_type()
    {
        string dir = Repo.TempDir();
        var graph = OnnxGraph.Load(Repo.Model("fmnist_resnet"));
        string firstConv = graph.Graph.Node.First(n => n.OpType == "Conv").Name;
        var (code, _, err, report, output) = Quantize("fmnist_resnet", dir, "--exclude", firstConv, "Add", "--limit", "64", "--eval-limit", "64");
        Assert.True(code == 0, err);
        var floatOps = report.GetProperty("rewrite").GetProperty("float_ops");
        Assert.Equal(3, floatOps.GetProperty("Add").GetInt32());
        Assert.Equal(1, floatOps.GetProperty("Conv").GetInt32());
        var model = OnnxGraph.Load(output);
        var conv = model.Graph.Node.Single(n => n.Name == firstConv);
        Assert.Equal("input", conv.Input[0]); // reads the float input, not a DequantizeLinear
        Assert.NotNull(model.Initializer(conv.Input[1])); // float weights kept
        // No quantizer reads an excluded node's output. (ONNX Runtime may still drop a following Relu into the next
        // quantizer and fuse DQ → Add → Q, which computes the same as a float Add quantized after the Relu.)
        foreach (var add in model.Graph.Node.Where(n => n.OpType == "Add"))
            Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "QuantizeLinear" && n.Input[0] == add.Output[0]);
    }
}
