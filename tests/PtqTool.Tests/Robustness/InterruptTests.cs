using System.Diagnostics;

namespace PtqTool.Tests.Robustness;

/// <summary>Class 2 of docs/robustness.md: SIGINT at any point leaves no output and no temporary file behind.</summary>
public class InterruptTests
{
    [Fact]
    public async Task Sigint_during_evaluation_leaves_nothing_behind()
    {
        if (!OperatingSystem.IsLinux()) return;
        var (dir, model) = Hostile.Copy("fmnist_resnet");
        string output = Path.Combine(dir, "q.onnx"), report = Path.Combine(dir, "q.report.json");
        string ptq = Path.Combine(AppContext.BaseDirectory, "ptq.dll");
        var start = new ProcessStartInfo("dotnet", [ptq, "quantize", model, "--calib", Hostile.SmallCalib(dir, 32), "--eval", Repo.EvalDir,
            "--out", output, "--report", report]) { RedirectStandardError = true, RedirectStandardOutput = true };
        using var p = Process.Start(start)!;
        var sawEvaluation = new TaskCompletionSource();
        p.ErrorDataReceived += (_, e) => { if (e.Data?.StartsWith("evaluating", StringComparison.Ordinal) == true) sawEvaluation.TrySetResult(); };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        await sawEvaluation.Task.WaitAsync(TimeSpan.FromSeconds(120));
        using (var kill = Process.Start("kill", ["-INT", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!) kill.WaitForExit();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(stop.Token);
        Assert.NotEqual(0, p.ExitCode);
        Assert.False(File.Exists(output));
        Assert.False(File.Exists(report));
        Assert.DoesNotContain(Directory.GetFiles(dir), f => Path.GetFileName(f).StartsWith(".ptq-", StringComparison.Ordinal));
    }
}
