using System.Globalization;
using System.Text.Json;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Pipeline;

public class SweepSeedsTests
{
    /// <summary>A labelled copy of the bundled eval folder with the first <paramref name="perClass"/> images of each class.</summary>
    private static string SmallEval(int perClass)
    {
        string dir = Repo.TempDir();
        foreach (var classDir in Directory.GetDirectories(Repo.EvalDir))
        {
            string target = Path.Combine(dir, Path.GetFileName(classDir));
            Directory.CreateDirectory(target);
            foreach (var f in Directory.GetFiles(classDir).Order(StringComparer.Ordinal).Take(perClass)) File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
        }
        return dir;
    }

    [Fact]
    public void A_sweep_over_seeds_shows_the_mean_and_spread_of_separate_quantize_runs()
    {
        string eval = SmallEval(30), dir = Repo.TempDir();
        var runs = new List<(double Top1, double Agreement, double Sqnr)>();
        foreach (var seed in new[] { "3", "4" })
        {
            string report = Path.Combine(dir, $"{seed}.json");
            var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--synthetic", "gaussian", "--count", "16", "--seed", seed, "--bits", "4",
                "--loss", "minmax", "--eval", eval, "--out", Path.Combine(dir, $"{seed}.onnx"), "--report", report, "--quiet");
            Assert.True(code == 0, err);
            var e = JsonDocument.Parse(File.ReadAllText(report)).RootElement.GetProperty("evaluation");
            runs.Add((e.GetProperty("int8_top1").GetDouble(), e.GetProperty("top1_agreement").GetDouble(), e.GetProperty("output_sqnr_db").GetDouble()));
        }
        // 4-bit minmax on N(0,1) inputs: the two seeds must give different models, or the spread would show nothing.
        Assert.NotEqual(runs[0].Sqnr, runs[1].Sqnr);

        var sweep = CliRunner.Run("sweep", Repo.Model("fmnist_cnn"), "--calibrations", "gaussian", "--count", "16", "--seeds", "3,4",
            "--losses", "minmax", "--configs", "w4a4", "--eval", eval, "--quiet");
        Assert.True(sweep.Code == 0, sweep.Err);
        static string F(double v, int d = 2) => v.ToString("F" + d, CultureInfo.InvariantCulture);
        double mean = runs.Average(r => r.Top1), spread = Math.Abs(runs[0].Top1 - runs[1].Top1) / Math.Sqrt(2);
        Assert.Contains("mean over seeds 3, 4", sweep.Out);
        Assert.Contains($"| minmax | {F(mean)} ±{F(spread)} (", sweep.Out);
        double agreementSpread = Math.Abs(runs[0].Agreement - runs[1].Agreement) / Math.Sqrt(2);
        Assert.Contains($"· {F(runs.Average(r => r.Agreement))} ±{F(agreementSpread)}% · {F(runs.Average(r => r.Sqnr), 1)} dB |", sweep.Out);
    }

    [Theory]
    [InlineData("1,x")]
    [InlineData("2,2")]
    [InlineData(",")]
    public void Bad_seed_lists_are_refused(string seeds)
    {
        var (code, _, err) = CliRunner.Run("sweep", Repo.Model("fmnist_cnn"), "--calibrations", "gaussian", "--seeds", seeds, "--eval", Repo.EvalDir, "--quiet");
        Assert.Equal(2, code);
        Assert.Contains("--seeds", err);
    }
}
