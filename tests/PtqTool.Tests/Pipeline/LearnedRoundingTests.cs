using System.Text.Json.Nodes;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Pipeline;

/// <summary>`ptq quantize --rounding adaround` end to end: only weight codes change, each by at most one step from nearest rounding's, and the run is reproducible.</summary>
public class LearnedRoundingTests
{
    private static (ModelProto Model, JsonNode Report, byte[] Bytes) Quantize(string dir, string name, params string[] extra) =>
        CliRunner.Quantize(dir, name, [Repo.Model("fmnist_cnn"), "--weight-bits", "4", "--eval", Repo.EvalDir, "--eval-limit", "64", "--rounding-samples", "64", "--rounding-iterations", "150", "--output-bias-correction", "off", .. extra]);

    [Fact]
    public void Only_weight_codes_change_each_by_at_most_one_step_and_every_layer_reconstructs_better()
    {
        string dir = Repo.TempDir();
        var (nearest, _, _) = Quantize(dir, "nearest", "--calib", Repo.CalibDir, "--limit", "64");
        var (learned, report, _) = Quantize(dir, "adaround", "--calib", Repo.CalibDir, "--limit", "64", "--rounding", "adaround", "--rounding-check", "off");
        var rounding = report["rounding"]!;
        var layers = rounding["layers"]!.AsArray();
        Assert.Equal(6, layers.Count);   // five Conv and the Gemm
        long changed = LearnedCodes.AssertOnlyCodesMoveByOneStep(nearest, learned, layers.Select(l => l!["weight"]!.GetValue<string>()), 7);
        Assert.Equal(layers.Sum(l => l!["changed_codes"]!.GetValue<long>()), changed);
        Assert.True(changed > 0);
        foreach (var l in layers)
            Assert.True(l!["error"]!.GetValue<double>() <= l["nearest_error"]!.GetValue<double>(), $"{l["weight"]}: {l["error"]} vs nearest {l["nearest_error"]}");
        Assert.True(layers.Sum(l => l!["error"]!.GetValue<double>()) < 0.8 * layers.Sum(l => l!["nearest_error"]!.GetValue<double>()));
        Assert.Equal("adaround (150 iterations per layer, fit to fp32 outputs)", new OnnxGraph(learned).Model.MetadataProps.First(p => p.Key == "ptq.rounding").Value);
    }

    [Fact]
    public void Data_free_learned_rounding_gives_the_same_bytes_for_the_same_seed()
    {
        string dir = Repo.TempDir();
        string[] options = ["--synthetic", "gaussian", "--count", "32", "--seed", "4", "--rounding", "adaround"];
        var (_, report, first) = Quantize(dir, "one", options);
        var (_, _, second) = Quantize(dir, "two", options);
        Assert.Equal(32, report["rounding"]!["samples"]!.GetValue<int>());
        Assert.Equal(first, second);
    }

    [Theory]
    [InlineData("--rounding", "block")]
    [InlineData("--rounding", "up")]
    [InlineData("--rounding-iterations", "0")]
    [InlineData("--rounding-target", "int8")]
    [InlineData("--rounding-samples", "0")]
    [InlineData("--rounding-check", "model")]
    public void Bad_rounding_options_are_refused_naming_the_option(string option, string value)
    {
        var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--calib", Repo.CalibDir, "--rounding", "adaround", option, value,
            "--out", Path.Combine(Repo.TempDir(), "x.onnx"), "--quiet");
        Assert.Equal(2, code);
        Assert.Contains(option, err);
    }

    [Fact]
    public void Learned_rounding_without_samples_or_with_bias_correction_is_refused_before_any_work()
    {
        string dir = Repo.TempDir();
        var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--stats", Path.Combine(dir, "missing.json"), "--rounding", "adaround", "--out", Path.Combine(dir, "x.onnx"), "--quiet");
        Assert.Equal(2, code);
        Assert.Contains("--rounding adaround", err);
        (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--calib", Repo.CalibDir, "--rounding", "adaround", "--bias-correction", "--out", Path.Combine(dir, "x.onnx"), "--quiet");
        Assert.Equal(2, code);
        Assert.Contains("--bias-correction", err);
        Assert.False(File.Exists(Path.Combine(dir, "x.onnx")));
    }
}
