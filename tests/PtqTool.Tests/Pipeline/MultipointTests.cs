using System.Text.Json.Nodes;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Pipeline;

/// <summary>`ptq quantize --multipoint` end to end on the bundled CNN at W4A8.</summary>
public class MultipointTests
{
    private static (ModelProto Model, JsonNode Report, byte[] Bytes) Quantize(string dir, string name, params string[] extra) =>
        CliRunner.Quantize(dir, name, [Repo.Model("fmnist_cnn"), "--weight-bits", "4", "--calib", Repo.CalibDir, "--limit", "64", "--eval", Repo.EvalDir, "--eval-limit", "128", "--rounding-samples", "64", .. extra]);

    /// <summary>
    /// The CNN's multiply-adds counted from its graph alone: every Conv keeps its input's size (3×3, pads 1, stride 1),
    /// each MaxPool before it halves the 28×28 input; Cout·Cin·9 per position; the Gemm N·K.
    /// </summary>
    private static long CnnMacs(ModelProto model)
    {
        var g = new OnnxGraph(model);
        long total = 0;
        int size = 28;
        foreach (var n in g.TopologicalOrder())
        {
            if (n.OpType == "MaxPool") size /= 2;
            if (n.OpType is not ("Conv" or "Gemm")) continue;
            var w = TensorData.Shape(g.Initializer(n.Input[1])!);
            if (n.OpType == "Conv") Assert.Equal([1L, 1, 1, 1], NodeAttributes.GetInts(n, "pads", []));
            else Assert.Equal(1, NodeAttributes.GetInt(n, "transB", 0));
            total += n.OpType == "Conv" ? (long)w[0] * w[1] * w[2] * w[3] * size * size : (long)w[0] * w[1];
        }
        return total;
    }

    [Fact]
    public void No_budget_is_the_one_term_model_byte_for_byte()
    {
        string dir = Repo.TempDir();
        var (_, plain, one) = Quantize(dir, "plain");
        var (_, zero, same) = Quantize(dir, "zero", "--multipoint", "0");
        Assert.Equal(one, same);
        Assert.Null(zero["multipoint"]);
        Assert.Equal(0, plain["options"]!["multipoint"]!.GetValue<double>());
    }

    [Fact]
    public void Second_terms_stay_within_the_budget_count_macs_from_the_graph_and_bring_the_output_closer()
    {
        string dir = Repo.TempDir();
        var (_, plain, _) = Quantize(dir, "plain");
        var (model, report, _) = Quantize(dir, "multipoint", "--multipoint", "0.3");
        var m = report["multipoint"]!;
        long modelMacs = m["model_macs"]!.GetValue<long>(), extra = m["extra_macs"]!.GetValue<long>();
        Assert.Equal(CnnMacs(OnnxModelFile.Load(Repo.Model("fmnist_cnn"))), modelMacs);
        Assert.InRange(extra, 1, (long)(0.3 * modelMacs));
        var layers = m["layers"]!.AsArray();
        Assert.Equal(6, layers.Count);
        Assert.Equal(modelMacs, layers.Sum(l => l!["macs"]!.GetValue<long>()));
        Assert.Equal(extra, layers.Sum(l => l!["extra_macs"]!.GetValue<long>()));
        foreach (var l in layers)
        {
            Assert.True(l!["error"]!.GetValue<double>() <= l["one_term_error"]!.GetValue<double>());
            Assert.Equal(l["term_rows"]!.GetValue<int>() > 0, l["extra_macs"]!.GetValue<long>() > 0);
        }
        // The graph holds one term-2 tensor per layer that got any, with one row per chosen channel (or every row, padded);
        // Conv and this Gemm (transB) hold output channels on axis 0.
        foreach (var l in layers.Where(l => l!["term_rows"]!.GetValue<int>() > 0))
        {
            string weight = l!["weight"]!.GetValue<string>();
            var terms = model.Graph.Initializer.Where(t => t.Name.StartsWith(weight + "_quantized_term2", StringComparison.Ordinal) && t.DataType == ElementType.Int8 && t.Dims.Count >= 2).ToList();
            var t = Assert.Single(terms);
            bool padded = l["form"]!.GetValue<string>() == "padded";
            Assert.Equal(padded ? l["rows"]!.GetValue<int>() : l["term_rows"]!.GetValue<int>(), (int)t.Dims[0]);
        }
        double Sqnr(JsonNode r) => r["evaluation_exact"]!["output_sqnr_db"]!.GetValue<double>();
        Assert.True(Sqnr(report) > Sqnr(plain) + 1, $"{Sqnr(report)} vs one term {Sqnr(plain)}");
        Assert.StartsWith("second weight terms within 0.3", new OnnxGraph(model).Model.MetadataProps.First(p => p.Key == "ptq.multipoint").Value);

        // The curve from both reports: one line (the CNN at W4A8) of two points.
        string png = Path.Combine(dir, "curve.png");
        var (code, stdout, err) = CliRunner.Run("plot", "multipoint", Path.Combine(dir, "plain.json"), Path.Combine(dir, "multipoint.json"), "--out", png);
        Assert.True(code == 0, err);
        Assert.Contains("2 point(s) in 1 line(s)", stdout);
        using var image = SkiaSharp.SKBitmap.Decode(png);
        Assert.True(image.Width > 1000 && image.Height > 400);
        var (missing, _, why) = CliRunner.Run("plot", "multipoint", Path.Combine(dir, "absent.json"), "--out", png);
        Assert.Equal(2, missing);
        Assert.Contains("absent.json", why);
    }

    [Fact]
    public void With_learned_rounding_both_terms_are_learned_and_every_chosen_layer_ends_closer_to_fp32()
    {
        var (model, report, _) = Quantize(Repo.TempDir(), "learned", "--multipoint", "0.2", "--rounding", "adaround", "--rounding-iterations", "100");
        Assert.Equal(6, report["rounding"]!["layers"]!.AsArray().Count);
        var layers = report["multipoint"]!["layers"]!.AsArray();
        Assert.Contains(layers, l => l!["term_rows"]!.GetValue<int>() > 0);
        foreach (var l in layers.Where(l => l!["term_rows"]!.GetValue<int>() > 0))
            Assert.True(l!["error"]!.GetValue<double>() < l["one_term_error"]!.GetValue<double>(), $"{l["weight"]}");
        // Term-2 codes stay on the 4-bit grid.
        foreach (var t in model.Graph.Initializer.Where(t => t.Name.Contains("_quantized_term2", StringComparison.Ordinal) && t.DataType == ElementType.Int8 && t.Dims.Count >= 2))
            Assert.All(TensorData.ToFloats(t), v => Assert.InRange(v, -7, 7));
    }

    [Theory]
    [InlineData("--multipoint", "1.5", "--multipoint")]
    [InlineData("--multipoint", "-0.1", "--multipoint")]
    [InlineData("--multipoint-form", "split", "--multipoint-form")]
    [InlineData("--activation-bits", "4", "--multipoint")]
    [InlineData("--bias-correction", null, "--multipoint")]
    public void Bad_multipoint_options_are_refused_naming_the_option(string option, string? value, string named)
    {
        var (code, _, err) = CliRunner.Run(["quantize", Repo.Model("fmnist_cnn"), "--calib", Repo.CalibDir, "--multipoint", "0.1", option, .. (value is null ? [] : new[] { value }),
            "--out", Path.Combine(Repo.TempDir(), "x.onnx"), "--quiet"]);
        Assert.Equal(2, code);
        Assert.Contains(named, err);
    }
}
