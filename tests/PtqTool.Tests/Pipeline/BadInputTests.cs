using PtqTool.Onnx;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Pipeline;

public class BadInputTests
{
    private static void AssertOneLineError(int code, string err, int expectedCode, params string[] words)
    {
        Assert.Equal(expectedCode, code);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("ptq:", StringComparison.Ordinal)).ToList();
        Assert.Single(lines);
        foreach (var w in words) Assert.Contains(w, lines[0]);
    }

    [Fact]
    public void Empty_calibration_folder_is_an_error_and_writes_nothing()
    {
        string dir = Repo.TempDir(), empty = Path.Combine(dir, "empty"), output = Path.Combine(dir, "out.onnx");
        Directory.CreateDirectory(empty);
        var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--calib", empty, "--out", output, "--quiet");
        AssertOneLineError(code, err, 2, empty, "no images");
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.GetFiles(dir));
    }

    [Fact]
    public void Corrupt_image_is_skipped_with_a_warning_or_stops_the_run_with_strict()
    {
        string dir = Repo.TempDir(), calib = Path.Combine(dir, "calib");
        Directory.CreateDirectory(calib);
        foreach (var f in Directory.GetFiles(Repo.CalibDir).Order().Take(20)) File.Copy(f, Path.Combine(calib, Path.GetFileName(f)));
        string bad = Path.Combine(calib, "broken.png");
        File.WriteAllBytes(bad, File.ReadAllBytes(Directory.GetFiles(Repo.CalibDir).Order().First())[..40]);
        string report = Path.Combine(dir, "r.json");
        var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--calib", calib, "--out", Path.Combine(dir, "a.onnx"), "--report", report, "--eval-limit", "16");
        Assert.Equal(0, code);
        Assert.Contains("broken.png", err);
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(report));
        Assert.Equal(1, json.RootElement.GetProperty("calibration").GetProperty("skipped").GetInt32());
        Assert.Equal(20, json.RootElement.GetProperty("calibration").GetProperty("samples").GetInt32());

        string strictOut = Path.Combine(dir, "b.onnx");
        var strict = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--calib", calib, "--out", strictOut, "--strict", "--quiet");
        AssertOneLineError(strict.Code, strict.Err, 2, "broken.png");
        Assert.False(File.Exists(strictOut));
    }

    [Fact]
    public void Image_size_mismatch_with_a_fixed_size_model_names_the_file_and_both_sizes()
    {
        string dir = Repo.TempDir(), calib = Path.Combine(dir, "calib");
        Directory.CreateDirectory(calib);
        using (var bitmap = new SkiaSharp.SKBitmap(40, 30))
        using (var data = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100))
            File.WriteAllBytes(Path.Combine(calib, "big.png"), data.ToArray());
        var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--calib", calib, "--out", Path.Combine(dir, "x.onnx"), "--quiet");
        AssertOneLineError(code, err, 2, "big.png", "40x30", "28x28");
    }

    [Fact]
    public void Op_without_a_handler_stays_in_float_or_is_an_error_with_strict()
    {
        // Put an Erf (no handler) between the first Relu and its consumer.
        string dir = Repo.TempDir(), path = Path.Combine(dir, "erf.onnx");
        var graph = OnnxGraph.Load(Repo.Model("fmnist_cnn"));
        var relu = graph.Graph.Node.First(n => n.OpType == "Relu");
        string inner = graph.UniqueName("erf_in");
        graph.RedirectConsumers(relu.Output[0], inner);
        graph.AddNode(NodeAttributes.Node("Erf", "odd_erf", [relu.Output[0]], [inner]));
        graph.SortNodes();
        OnnxModelFile.Save(graph.Model, path);
        File.Copy(Path.ChangeExtension(Repo.Model("fmnist_cnn"), ".json"), Path.ChangeExtension(path, ".json"));

        var (code, output, err) = CliRunner.Run("quantize", path, "--calib", Repo.CalibDir, "--limit", "32", "--eval-limit", "32", "--out", Path.Combine(dir, "ok.onnx"));
        Assert.Equal(0, code);
        Assert.Contains("Erf", err);
        Assert.Contains("kept in float: Erf 1", output);

        var strict = CliRunner.Run("quantize", path, "--calib", Repo.CalibDir, "--strict", "--out", Path.Combine(dir, "no.onnx"), "--quiet");
        AssertOneLineError(strict.Code, strict.Err, 2, "Erf");
        Assert.False(File.Exists(Path.Combine(dir, "no.onnx")));
    }

    [Theory]
    [InlineData("--max-drop", "-1", "--max-drop")]
    [InlineData("--bits", "9", "--bits")]
    [InlineData("--loss", "magic", "--loss")]
    [InlineData("--batch", "0", "--batch")]
    public void Out_of_range_options_are_rejected_before_any_work(string option, string value, string named)
    {
        string dir = Repo.TempDir();
        var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--calib", Repo.CalibDir, option, value, "--out", Path.Combine(dir, "x.onnx"), "--quiet");
        AssertOneLineError(code, err, 2, named);
        Assert.Empty(Directory.GetFiles(dir));
    }

    [Fact]
    public void Unknown_options_and_wrong_types_are_bad_input()
    {
        var unknown = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--no-such-option");
        Assert.Equal(2, unknown.Code);
        Assert.Contains("--no-such-option", unknown.Err);
        var wrongType = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--batch", "many");
        Assert.Equal(2, wrongType.Code);
        Assert.Contains("--batch", wrongType.Err);
    }

    [Fact]
    public void Gate_exits_with_three_after_writing_the_report()
    {
        string dir = Repo.TempDir(), report = Path.Combine(dir, "r.md");
        // W2A2 with min-max costs far more than 0 points.
        var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--calib", Repo.CalibDir, "--limit", "64", "--eval", Repo.EvalDir, "--eval-limit", "200",
            "--bits", "2", "--loss", "minmax", "--max-drop", "0", "--out", Path.Combine(dir, "x.onnx"), "--report", report, "--quiet");
        Assert.Equal(3, code);
        Assert.Contains("gate failed", err);
        Assert.Contains("FAILED", File.ReadAllText(report));
    }
}
