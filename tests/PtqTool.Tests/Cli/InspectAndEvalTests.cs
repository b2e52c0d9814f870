using System.Globalization;
using System.Text.Json;

namespace PtqTool.Tests.Cli;

public class InspectAndEvalTests
{
    [Fact]
    public void Inspect_summarizes_a_bundled_model()
    {
        var (code, output, _) = CliRunner.Run("inspect", Repo.Model("fmnist_resnet"));
        Assert.Equal(0, code);
        Assert.Contains("ai.onnx 13", output);
        Assert.Contains("batchnorm   yes (8 nodes)", output);
        Assert.Matches(@"Add\s+3", output);
        Assert.Contains("input  float [batch, 1, 28, 28]", output);
    }

    [Fact]
    public void Inspect_reports_missing_truncated_and_non_onnx_files_in_one_line()
    {
        string dir = Repo.TempDir();
        string truncated = Path.Combine(dir, "truncated.onnx");
        File.WriteAllBytes(truncated, File.ReadAllBytes(Repo.Model("fmnist_cnn"))[..5000]);
        string text = Path.Combine(dir, "notes.onnx");
        File.WriteAllText(text, "this is not a model\n");
        string missing = Path.Combine(dir, "missing.onnx");
        foreach (var (path, words) in new[] { (missing, "file not found"), (truncated, "truncated"), (text, "not an ONNX model") })
        {
            var (code, output, err) = CliRunner.Run("inspect", path);
            Assert.Equal(2, code);
            Assert.Equal("", output);
            string[] lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Single(lines);
            Assert.StartsWith($"ptq: error: {path}: ", lines[0]);
            Assert.Contains(words, lines[0]);
        }
    }

    [Theory]
    [InlineData("fmnist_cnn")]
    [InlineData("fmnist_resnet")]
    [InlineData("fmnist_mobilenetv2")]
    public void Fp32_accuracy_through_onnx_runtime_matches_the_models_readme(string name)
    {
        var (code, output, _) = CliRunner.Run("eval", Repo.Model(name), "--eval", Repo.EvalDir, "--quiet");
        Assert.Equal(0, code);
        var match = System.Text.RegularExpressions.Regex.Match(output, @"top-1 ([0-9.]+)%");
        double measured = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        // models/metrics.json is written by models/train.py (PyTorch's own evaluation on the same images);
        // models/README.md quotes it.
        using var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(Repo.Root, "models", "metrics.json")));
        double stated = metrics.RootElement.GetProperty(name).GetProperty("eval_top1").GetDouble();
        Assert.InRange(measured, stated - 0.1, stated + 0.1);
        Assert.Contains(stated.ToString("F2", CultureInfo.InvariantCulture), File.ReadAllText(Path.Combine(Repo.Root, "models", "README.md")));
    }
}
