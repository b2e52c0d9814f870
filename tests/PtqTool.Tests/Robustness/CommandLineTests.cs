using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Robustness;

/// <summary>Classes 6 and 8 of docs/robustness.md: every expected failure is exit 2 with a readable line; messages and help say what they mean.</summary>
public class CommandLineTests
{
    [Fact]
    public void No_arguments_is_bad_input_listing_the_commands()
    {
        var r = CliRunner.Run();
        Hostile.AssertBadInput(r, "quantize", "check");
    }

    [Fact]
    public void Wrong_types_are_named_as_a_user_types_them()
    {
        var r = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--limit", "abc");
        Assert.Equal(2, r.Code);
        Assert.Contains("abc", r.Err);
        Assert.DoesNotContain("System.", r.Err);
        Assert.Contains("an integer", r.Err);
    }

    [Fact]
    public void A_bad_weight_loss_blames_weight_loss()
    {
        var (dir, model) = Hostile.Copy();
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", Hostile.SmallCalib(dir), "--weight-loss", "foo", "--quiet"), "--weight-loss", "foo");
    }

    [Fact]
    public void Two_calibration_sources_are_refused()
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir);
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--synthetic", "gaussian", "--quiet"), "--calib", "--synthetic");
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--stats", Path.Combine(dir, "s.json"), "--quiet"), "--calib", "--stats");
    }

    [Fact]
    public void Outputs_of_the_other_commands_are_checked_before_their_work()
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir), existing = Path.Combine(dir, "existing.txt");
        File.WriteAllText(existing, "keep me");
        Hostile.AssertBadInput(CliRunner.Run("distill", model, "--out", existing, "--quiet"), "existing.txt", "is a file");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Hostile.AssertBadInput(CliRunner.Run("sensitivity", model, "--calib", calib, "--out", dir, "--quiet"), dir);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "sensitivity --out was checked only after the work");
        Hostile.AssertBadInput(CliRunner.Run("compare-losses", "--samples", "-1"), "--samples");
        Assert.Equal("keep me", File.ReadAllText(existing));
    }

    /// <summary>Whether a help text lists the option (as an option line, not inside another option's description).</summary>
    private static bool Lists(string help, string option) =>
        System.Text.RegularExpressions.Regex.IsMatch(help, $@"^\s+{System.Text.RegularExpressions.Regex.Escape(option)}[\s,<]", System.Text.RegularExpressions.RegexOptions.Multiline);

    [Fact]
    public void Help_lists_only_the_options_a_command_uses()
    {
        var calibrate = CliRunner.Run("calibrate", "--help").Out;
        Assert.True(Lists(calibrate, "--calib") && Lists(calibrate, "--exclude"), calibrate);
        Assert.False(Lists(calibrate, "--loss") || Lists(calibrate, "--max-drop") || Lists(calibrate, "--target"), calibrate);
        var distill = CliRunner.Run("distill", "--help").Out;
        Assert.False(Lists(distill, "--calib") || Lists(distill, "--loss") || Lists(distill, "--batch"), distill);
        var sweep = CliRunner.Run("sweep", "--help").Out;
        Assert.True(Lists(sweep, "--losses") && Lists(sweep, "--configs"), sweep);
        Assert.False(Lists(sweep, "--loss") || Lists(sweep, "--bits"), sweep);
        Assert.True(Lists(CliRunner.Run("eval", "--help").Out, "--eval-limit"));
    }

    [Fact]
    public void Quiet_hides_progress_but_not_warnings_and_logs_get_no_carriage_returns()
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir);
        File.WriteAllBytes(Path.Combine(calib, "broken.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        var quiet = CliRunner.Run("calibrate", model, "--calib", calib, "--stats", Path.Combine(dir, "a.json"), "--quiet");
        Assert.Equal(0, quiet.Code);
        Assert.Contains("broken.png", quiet.Err);
        Assert.DoesNotContain("calibrating", quiet.Err);
        var loud = CliRunner.Run("calibrate", model, "--calib", calib, "--stats", Path.Combine(dir, "b.json"));
        Assert.Contains("calibrating", loud.Err);
        Assert.DoesNotContain("\r", loud.Err);
    }

    [Fact]
    public void Skipped_evaluation_images_are_counted_in_the_report()
    {
        var (dir, model) = Hostile.Copy();
        string eval = Path.Combine(dir, "eval");
        foreach (var c in Directory.GetDirectories(Repo.EvalDir).Order())
        {
            string d = Path.Combine(eval, Path.GetFileName(c));
            Directory.CreateDirectory(d);
            foreach (var f in Directory.GetFiles(c).Order().Take(3)) File.Copy(f, Path.Combine(d, Path.GetFileName(f)));
        }
        File.WriteAllBytes(Path.Combine(eval, Path.GetFileName(Directory.GetDirectories(eval).Order().First()), "zz-broken.png"), [1, 2, 3]);
        string report = Path.Combine(dir, "r.json");
        var r = CliRunner.Run("quantize", model, "--calib", Hostile.SmallCalib(dir), "--eval", eval, "--out", Path.Combine(dir, "q.onnx"), "--report", report, "--quiet");
        Assert.True(r.Code == 0, r.Err);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(report))!;
        Assert.Equal(1, json["evaluation"]!["skipped"]!.GetValue<int>());
        Assert.Equal(30, json["evaluation"]!["samples"]!.GetValue<int>());
    }
}
