using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Robustness;

/// <summary>
/// Random byte flips and truncations of the bundled model, a statistics file and a PNG: ptq must answer 0 or 2 (never
/// an internal error), within a time limit, and write nothing when it answers 2.
/// </summary>
public class FuzzTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);

    private static byte[] Mutate(byte[] original, Random rng, int k)
    {
        if (k % 2 == 0) return original[..rng.Next(1, original.Length)];
        var copy = (byte[])original.Clone();
        int flips = rng.Next(1, 9);
        // Half the flips land in the first kilobytes, where the structure (not the weights) lives.
        for (int i = 0; i < flips; i++) copy[rng.Next(i % 2 == 0 ? Math.Min(copy.Length, 4096) : copy.Length)] ^= (byte)(1 << rng.Next(8));
        return copy;
    }

    private static void Run(string what, string dir, string output, params string[] args)
    {
        var task = Task.Run(() => CliRunner.Run(args));
        Assert.True(task.Wait(Limit), $"{what}: no answer within {Limit.TotalSeconds} s");
        var (code, _, err) = task.Result;
        Assert.True(code is 0 or 2, $"{what}: exit {code}: {err}");
        if (code == 2)
        {
            Assert.False(File.Exists(output), $"{what}: exit 2 but {output} was written");
            Assert.DoesNotContain(Directory.GetFiles(dir), f => Path.GetFileName(f).StartsWith(".ptq-", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Damaged_models_never_crash_hang_or_write()
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir, 8);
        var original = File.ReadAllBytes(model);
        var rng = new Random(1);
        for (int k = 0; k < 12; k++)
        {
            File.WriteAllBytes(model, Mutate(original, rng, k));
            string output = Path.Combine(dir, $"out{k}.onnx");
            Run($"model mutation {k}", dir, output, "quantize", model, "--calib", calib, "--eval-limit", "8", "--out", output, "--quiet");
        }
    }

    [Fact]
    public void Damaged_statistics_never_crash_hang_or_write()
    {
        var (dir, model) = Hostile.Copy();
        string stats = Path.Combine(dir, "s.json");
        Assert.Equal(0, CliRunner.Run("calibrate", model, "--calib", Hostile.SmallCalib(dir, 8), "--stats", stats, "--quiet").Code);
        var original = File.ReadAllBytes(stats);
        var rng = new Random(2);
        for (int k = 0; k < 10; k++)
        {
            File.WriteAllBytes(stats, Mutate(original, rng, k));
            string output = Path.Combine(dir, $"out{k}.onnx");
            Run($"stats mutation {k}", dir, output, "quantize", model, "--stats", stats, "--eval", Repo.EvalDir, "--eval-limit", "8", "--out", output, "--quiet");
        }
    }

    [Fact]
    public void Damaged_images_never_crash_hang_or_write()
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir, 4);
        var original = File.ReadAllBytes(Directory.GetFiles(Repo.CalibDir).Order().First());
        var rng = new Random(3);
        for (int k = 0; k < 10; k++)
        {
            File.WriteAllBytes(Path.Combine(calib, "damaged.png"), Mutate(original, rng, k));
            string output = Path.Combine(dir, $"out{k}.onnx");
            Run($"png mutation {k}", dir, output, "quantize", model, "--calib", calib, "--strict", "--eval-limit", "4", "--out", output, "--quiet");
        }
    }
}
