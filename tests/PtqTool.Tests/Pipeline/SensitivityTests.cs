using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Pipeline;

public class SensitivityTests
{
    private static readonly string[] Common = ["--calib", Repo.CalibDir, "--limit", "100", "--eval", Repo.EvalDir, "--eval-limit", "200", "--bits", "4", "--loss", "qsin", "--quiet"];

    /// <summary>Output SQNR of a separate `ptq quantize` run (its own calibration) with the given nodes kept in float.</summary>
    private static double QuantizeSqnr(params string[] exclude)
    {
        string dir = Repo.TempDir(), report = Path.Combine(dir, "r.json");
        string[] excludeArgs = exclude.Length == 0 ? [] : ["--exclude", .. exclude];
        var (code, _, err) = CliRunner.Run(["quantize", Repo.Model("fmnist_cnn"), .. Common, .. excludeArgs, "--out", Path.Combine(dir, "q.onnx"), "--report", report]);
        Assert.True(code == 0, err);
        return JsonDocument.Parse(File.ReadAllText(report)).RootElement.GetProperty("evaluation").GetProperty("output_sqnr_db").GetDouble();
    }

    [Fact]
    public void Each_row_is_what_quantize_with_that_node_excluded_gives_and_the_most_sensitive_comes_first()
    {
        var (code, output, err) = CliRunner.Run(["sensitivity", Repo.Model("fmnist_cnn"), .. Common]);
        Assert.True(code == 0, err);
        double Number(string text) => double.Parse(text, CultureInfo.InvariantCulture);
        double all = Number(Regex.Match(output, @"Everything quantized: output SQNR ([-0-9.]+) dB").Groups[1].Value);
        var rows = Regex.Matches(output, @"^\| `([^`]+)` \| (\w+) \| ([-0-9.]+) dB \(([-+0-9.]+)\)", RegexOptions.Multiline)
            .Select(m => (Node: m.Groups[1].Value, Sqnr: Number(m.Groups[3].Value), Gain: Number(m.Groups[4].Value))).ToList();
        Assert.True(rows.Count >= 6, output); // 5 Conv, Gemm, pools, ...
        Assert.Equal(rows.Select(r => r.Sqnr).OrderDescending(), rows.Select(r => r.Sqnr));
        Assert.All(rows, r => Assert.Equal(r.Sqnr - all, r.Gain, 0.11));
        // Independent runs: full quantization, and the top and bottom nodes kept in float.
        Assert.Equal(QuantizeSqnr(), all, 0.1);
        Assert.Equal(QuantizeSqnr(rows[0].Node), rows[0].Sqnr, 0.1);
        Assert.Equal(QuantizeSqnr(rows[^1].Node), rows[^1].Sqnr, 0.1);
    }

    [Fact]
    public void Without_data_to_compare_on_it_says_what_to_give()
    {
        var (code, _, err) = CliRunner.Run("sensitivity", Repo.Model("fmnist_cnn"), "--quiet");
        Assert.Equal(2, code);
        Assert.Contains("--eval", err);
    }
}
