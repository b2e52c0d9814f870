using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Robustness;

/// <summary>Class 1 and 2 of docs/robustness.md: no output may replace an input or another output, and a failing run writes nothing.</summary>
public class OutputPathTests
{
    public static IEnumerable<object[]> InputSpellings() => [["same path"], ["./relative"], ["symlink"], ["hard link"]];

    [Theory]
    [MemberData(nameof(InputSpellings))]
    public void Out_equal_to_the_input_model_is_refused_however_it_is_spelled(string spelling)
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir);
        string out_ = spelling switch
        {
            "same path" => model,
            "./relative" => Path.Combine(dir, ".", "sub", "..", Path.GetFileName(model)),
            "symlink" => Path.Combine(dir, "link.onnx"),
            _ => Path.Combine(dir, "hard.onnx"),
        };
        if (spelling == "symlink") File.CreateSymbolicLink(out_, model);
        if (spelling == "hard link")
        {
            using var ln = System.Diagnostics.Process.Start("ln", [model, out_])!;
            ln.WaitForExit();
            Assert.Equal(0, ln.ExitCode);
        }
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        var before = Hostile.Snapshot(dir);
        var r = CliRunner.Run("quantize", model, "--calib", calib, "--out", out_, "--quiet");
        Hostile.AssertBadInput(r, "input model");
        Assert.Equal(before, Hostile.Snapshot(dir));
    }

    [Fact]
    public void Report_over_the_input_sidecar_or_over_the_model_output_is_refused()
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir);
        var before = Hostile.Snapshot(dir);
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--out", Path.Combine(dir, "q.onnx"), "--report", Path.ChangeExtension(model, ".json"), "--quiet"), "sidecar");
        string x = Path.Combine(dir, "x.md");
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--out", x, "--report", x, "--quiet"), "same file");
        Assert.Equal(before, Hostile.Snapshot(dir));
    }

    [Fact]
    public void Non_regular_targets_and_folders_are_never_replaced()
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir);
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--out", "/dev/null", "--quiet"), "/dev/null", "not a regular file");
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--out", calib, "--quiet"), calib);
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--out", Path.Combine(dir, "q.onnx"), "--report", "/proc/ptq-report.json", "--quiet"), "/proc");
        Assert.True(File.Exists("/dev/null") && new FileInfo("/dev/null").Length == 0);
    }

    [Fact]
    public void Merge_stats_refuses_to_overwrite_a_shard_or_count_one_twice()
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir), s0 = Path.Combine(dir, "s0.json"), s1 = Path.Combine(dir, "s1.json");
        Assert.Equal(0, CliRunner.Run("calibrate", model, "--calib", calib, "--shard", "0/2", "--stats", s0, "--quiet").Code);
        Assert.Equal(0, CliRunner.Run("calibrate", model, "--calib", calib, "--shard", "1/2", "--stats", s1, "--quiet").Code);
        var before = Hostile.Snapshot(dir);
        Hostile.AssertBadInput(CliRunner.Run("merge-stats", s0, s1, "--out", s0), "s0.json", "overwrite");
        Hostile.AssertBadInput(CliRunner.Run("merge-stats", s0, s0, "--out", Path.Combine(dir, "m.json")), "twice");
        File.Copy(s0, Path.Combine(dir, "copy.json"));
        Hostile.AssertBadInput(CliRunner.Run("merge-stats", s0, Path.Combine(dir, "copy.json"), "--out", Path.Combine(dir, "m.json")), "same content");
        Assert.False(File.Exists(Path.Combine(dir, "m.json")));
        Assert.Equal(before.Count + 1, Hostile.Snapshot(dir).Count);
    }

    [Fact]
    public void Bad_evaluation_inputs_fail_before_calibration_and_write_nothing()
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir), empty = Path.Combine(dir, "empty"), many = Path.Combine(dir, "many");
        Directory.CreateDirectory(empty);
        var png = Directory.GetFiles(Repo.CalibDir).Order().First();
        for (int c = 0; c < 12; c++)
        {
            Directory.CreateDirectory(Path.Combine(many, $"class{c:00}"));
            File.Copy(png, Path.Combine(many, $"class{c:00}", "a.png"));
        }
        var before = Hostile.Snapshot(dir);
        string out_ = Path.Combine(dir, "q.onnx");
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--eval", Path.Combine(dir, "missing"), "--out", out_, "--quiet"), "missing", "not found");
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--eval", empty, "--out", out_, "--quiet"), "empty");
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--eval", png, "--out", out_, "--quiet"), "is a file");
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--eval", many, "--out", out_, "--quiet"), "12 class", "10 scores");
        Assert.Equal(before, Hostile.Snapshot(dir));
    }

    [Fact]
    public void A_long_output_name_works_and_leaves_no_temporary_file()
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir);
        string name = new string('m', 250 - ".onnx".Length) + ".onnx";
        var r = CliRunner.Run("quantize", model, "--calib", calib, "--eval-limit", "8", "--out", Path.Combine(dir, name), "--quiet");
        Assert.True(r.Code == 0, r.Err);
        Assert.True(File.Exists(Path.Combine(dir, name)));
        Assert.DoesNotContain(Directory.GetFiles(dir), f => Path.GetFileName(f).StartsWith(".ptq-", StringComparison.Ordinal));
    }
}
