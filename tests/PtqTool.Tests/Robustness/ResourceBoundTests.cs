using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Robustness;

/// <summary>Class 4 of docs/robustness.md: nothing a user controls makes ptq work without end or take the machine's memory.</summary>
public class ResourceBoundTests
{
    [Fact]
    public void A_link_loop_in_the_calibration_folder_ends()
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir, 8);
        Directory.CreateSymbolicLink(Path.Combine(calib, "loop"), calib);
        Directory.CreateDirectory(Path.Combine(calib, "deeper"));
        Directory.CreateSymbolicLink(Path.Combine(calib, "deeper", "up"), calib);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var r = CliRunner.Run("calibrate", model, "--calib", calib, "--stats", Path.Combine(dir, "s.json"), "--quiet");
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("8 samples", r.Out);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60));
    }

    [Theory]
    [InlineData("--threads", "1000", "--threads")]
    [InlineData("--threads", "100000", "--threads")]
    [InlineData("--batch", "2147483647", "--batch")]
    [InlineData("--percentile", "0", "--percentile")]
    public void Oversized_options_are_refused_before_any_work(string option, string value, string named)
    {
        var (dir, model) = Hostile.Copy();
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", Hostile.SmallCalib(dir), option, value, "--quiet"), named);
    }

    [Fact]
    public void A_huge_image_is_refused_from_its_header_naming_the_file()
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir, 8);
        File.WriteAllBytes(Path.Combine(calib, "huge.png"), Hostile.PngHeaderOnly(24000, 24000));
        var r = CliRunner.Run("calibrate", model, "--calib", calib, "--stats", Path.Combine(dir, "s.json"));
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("huge.png", r.Err);
        Assert.Contains("24000x24000", r.Err);
        var strict = CliRunner.Run("calibrate", model, "--calib", calib, "--stats", Path.Combine(dir, "t.json"), "--strict", "--quiet");
        Hostile.AssertBadInput(strict, "huge.png", "megapixels");
        Assert.False(File.Exists(Path.Combine(dir, "t.json")));
    }
}
