using System.Diagnostics;
using System.Text.Json.Nodes;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Evaluation;

/// <summary>
/// Peak resident memory of `ptq quantize` (each run its own process, as measured by ptq itself) does not grow with the
/// depth of the model: the exposed tensors are fetched within --memory-budget (exposing everything at once would add
/// depth × batch × 32 KiB, 400 MiB between the two depths compared here). Against the batch it stays within the FP32
/// session's own peak (`ptq bench`, same batch) plus the INT8 session's, which is no larger, plus a fixed margin.
/// </summary>
public class BoundedMemoryTests
{
    private static long PeakRss(string model, string data, int batch, string dir)
    {
        string report = Path.Combine(dir, $"{Path.GetFileNameWithoutExtension(model)}-{batch}.json");
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "ptq.dll"), "quantize", model, "--calib", data, "--eval", data,
            "--batch", batch.ToString(System.Globalization.CultureInfo.InvariantCulture), "--memory-budget", "32", "--threads", "1",
            "--out", Path.Combine(dir, $"q-{Path.GetFileName(model)}-{batch}.onnx"), "--report", report, "--quiet"]) { RedirectStandardError = true, RedirectStandardOutput = true };
        using var p = Process.Start(start)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, err);
        return JsonNode.Parse(File.ReadAllText(report))!["resources"]!["peak_rss_bytes"]!.GetValue<long>();
    }

    private static long Fp32SessionPeak(string model, int batch)
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "ptq.dll"), "bench", model, "--batch", batch.ToString(System.Globalization.CultureInfo.InvariantCulture), "--runs", "3", "--threads", "1"])
            { RedirectStandardOutput = true };
        using var p = Process.Start(start)!;
        string text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return long.Parse(System.Text.RegularExpressions.Regex.Match(text, @"peak RSS (\d+) MiB").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) << 20;
    }

    [Fact]
    public void Peak_memory_stays_flat_across_depth_and_batch()
    {
        if (!OperatingSystem.IsLinux()) return;
        string dir = Repo.TempDir();
        string shallow = DeepModels.Write(dir, 25), deep = DeepModels.Write(dir, 50);
        string data = DeepModels.Data(dir, 128);
        long perLayerPerSample = 4L * DeepModels.Channels * DeepModels.Size * DeepModels.Size;
        long shallowPeak = PeakRss(shallow, data, 128, dir), deepPeak = PeakRss(deep, data, 128, dir), deepSmallBatch = PeakRss(deep, data, 32, dir);
        string all = $"peaks: 25 layers {shallowPeak >> 20} MiB, 50 layers {deepPeak >> 20} MiB, 50 layers batch 32 {deepSmallBatch >> 20} MiB; "
            + $"exposing every tensor at once would add {25 * 128 * perLayerPerSample >> 20} MiB for 25 more layers";
        Assert.True(Math.Abs(deepPeak - shallowPeak) < 32L << 20, all);
        foreach (var (peak, batch) in new[] { (deepPeak, 128), (deepSmallBatch, 32) })
        {
            long fp32 = Fp32SessionPeak(deep, batch);
            Assert.True(peak < 2 * fp32 + (192L << 20), $"{all}; FP32 session alone at batch {batch}: {fp32 >> 20} MiB");
        }
    }
}
