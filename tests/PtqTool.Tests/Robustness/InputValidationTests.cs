using System.Text.Json.Nodes;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Robustness;

/// <summary>Classes 5–7 of docs/robustness.md: garbage in is refused with exit 2 naming the file, never scored.</summary>
public class InputValidationTests
{
    [Fact]
    public void Nan_weights_are_refused_naming_the_tensor()
    {
        var (dir, model) = Hostile.Copy();
        var m = Hostile.Load(model);
        var w = m.Graph.Initializer.First(t => t.Dims.Count == 4);
        var values = TensorData.ToFloats(w);
        values[3] = float.NaN;
        m.Graph.Initializer[m.Graph.Initializer.IndexOf(w)] = TensorData.FromFloats(w.Name, TensorData.Shape(w), values);
        Hostile.Save(m, model);
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", Hostile.SmallCalib(dir), "--quiet"), w.Name, "NaN");
    }

    [Fact]
    public void An_already_quantized_model_is_refused()
    {
        var (dir, model) = Hostile.Copy();
        string calib = Hostile.SmallCalib(dir), q = Path.Combine(dir, "q.onnx");
        Assert.Equal(0, CliRunner.Run("quantize", model, "--calib", calib, "--eval-limit", "8", "--out", q, "--quiet").Code);
        Hostile.AssertBadInput(CliRunner.Run("quantize", q, "--calib", calib, "--quiet"), "q.onnx", "already quantized");
    }

    [Fact]
    public void An_exclude_that_matches_nothing_is_refused_with_the_nearest_names()
    {
        var (dir, model) = Hostile.Copy();
        var r = CliRunner.Run("quantize", model, "--calib", Hostile.SmallCalib(dir), "--exclude", "/fc/Gem", "--quiet");
        Hostile.AssertBadInput(r, "/fc/Gem", "'/fc/Gemm'");
    }

    [Fact]
    public void Dynamic_height_and_width_need_a_size()
    {
        var (dir, model) = Hostile.Copy();
        File.Delete(Path.ChangeExtension(model, ".json"));
        var m = Hostile.Load(model);
        var dims = m.Graph.Input[0].Type.TensorType.Shape.Dim;
        dims[2] = new TensorShapeProto.Types.Dimension { DimParam = "height" };
        dims[3] = new TensorShapeProto.Types.Dimension { DimParam = "width" };
        Hostile.Save(m, model);
        string calib = Hostile.SmallCalib(dir);
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--quiet"), "--size");
        var ok = CliRunner.Run("quantize", model, "--calib", calib, "--size", "28", "--resize", "none", "--eval-limit", "8", "--out", Path.Combine(dir, "q.onnx"), "--quiet");
        Assert.True(ok.Code == 0, ok.Err);
    }

    [Fact]
    public void The_quantized_model_gets_a_sidecar_so_eval_reads_it_like_the_original()
    {
        var (dir, model) = Hostile.Copy();
        string q = Path.Combine(dir, "q.onnx"), report = Path.Combine(dir, "report.json");
        Assert.Equal(0, CliRunner.Run("quantize", model, "--calib", Hostile.SmallCalib(dir, 64), "--eval", Repo.EvalDir, "--eval-limit", "200",
            "--out", q, "--report", report, "--quiet").Code);
        Assert.True(File.Exists(Path.Combine(dir, "q.json")));
        var eval = CliRunner.Run("eval", q, "--eval", Repo.EvalDir, "--eval-limit", "200", "--quiet");
        Assert.True(eval.Code == 0, eval.Err);
        double top1 = double.Parse(System.Text.RegularExpressions.Regex.Match(eval.Out, @"top-1 ([0-9.]+)%").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var json = JsonNode.Parse(File.ReadAllText(report))!;
        Assert.Equal(json["evaluation"]!["int8_top1"]!.GetValue<double>(), top1, 6);
    }

    public static IEnumerable<object[]> BadStats() =>
    [
        ["exponent", "exponent"],
        ["bins_per_side", "bins_per_side"],
        ["short pair", "pair"],
        ["sha", "model_sha256"],
        ["count", "count"],
    ];

    [Theory]
    [MemberData(nameof(BadStats))]
    public void A_corrupt_statistics_file_is_refused_naming_the_field(string damage, string named)
    {
        var (dir, model) = Hostile.Copy();
        string stats = Path.Combine(dir, "s.json");
        Assert.Equal(0, CliRunner.Run("calibrate", model, "--calib", Hostile.SmallCalib(dir), "--stats", stats, "--quiet").Code);
        var json = JsonNode.Parse(File.ReadAllText(stats))!;
        var tensor = json["tensors"]!.AsObject().First().Value!;
        switch (damage)
        {
            case "exponent": tensor["exponent"] = 5000; break;
            case "bins_per_side": tensor["bins_per_side"] = 1 << 30; break;
            case "short pair": tensor["bins"]!.AsArray()[0] = new JsonArray(5); break;
            case "sha": json["model_sha256"] = "abc"; break;
            default: tensor["count"] = tensor["count"]!.GetValue<long>() + 7; break;
        }
        File.WriteAllText(stats, json.ToJsonString());
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--stats", stats, "--eval", Repo.EvalDir, "--eval-limit", "8", "--out", Path.Combine(dir, "q.onnx"), "--quiet"), "s.json", named);
        Assert.False(File.Exists(Path.Combine(dir, "q.onnx")));
    }

    public static IEnumerable<object[]> BadNpy() =>
    [
        ["{'descr': '<f4', 'fortran_order': False, 'shape': (abc, 28), }", "shape"],
        ["{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 28), }", "shape"],
        ["{'descr': '', 'fortran_order': False, 'shape': (1, 1, 28, 28), }", "dtype"],
        ["{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 1000), }", "bytes"],
        ["{'descr': '<f4', 'fortran_order': False, ", "shape"],
    ];

    [Theory]
    [MemberData(nameof(BadNpy))]
    public void A_malformed_npy_header_is_bad_input_naming_the_file(string header, string named)
    {
        var (dir, model) = Hostile.Copy();
        string calib = Path.Combine(dir, "npy");
        Directory.CreateDirectory(calib);
        File.WriteAllBytes(Path.Combine(calib, "x.npy"), Hostile.Npy(header, 28 * 28 * 4));
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--quiet"), "x.npy", named);
    }

    [Fact]
    public void External_data_outside_the_model_folder_or_with_a_bad_offset_is_refused()
    {
        var (dir, model) = Hostile.Copy();
        var m = Hostile.Load(model);
        OnnxModelFile.SaveWithExternalData(m, model);
        var ext = Hostile.Load(model);
        var tensor = ext.Graph.Initializer.First(t => t.DataLocation == TensorProto.Types.DataLocation.External);
        var location = tensor.ExternalData.First(e => e.Key == "location");
        string calib = Hostile.SmallCalib(dir);
        foreach (var (value, named) in new[] { ("/etc/passwd", "leaves the model's folder"), ("../../etc/passwd", "leaves the model's folder") })
        {
            location.Value = value;
            Hostile.Save(ext, model);
            Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--quiet"), tensor.Name, named);
        }
        location.Value = Path.GetFileName(model) + ".data";
        tensor.ExternalData.First(e => e.Key == "offset").Value = "12abc";
        Hostile.Save(ext, model);
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--calib", calib, "--quiet"), tensor.Name, "offset");
    }

    [Fact]
    public void Statistics_are_tied_to_the_external_weights_too()
    {
        var (dir, model) = Hostile.Copy();
        OnnxModelFile.SaveWithExternalData(Hostile.Load(model), model);
        string stats = Path.Combine(dir, "s.json");
        Assert.Equal(0, CliRunner.Run("calibrate", model, "--calib", Hostile.SmallCalib(dir), "--stats", stats, "--quiet").Code);
        // Change one weight in the external file only: the .onnx bytes stay the same, the statistics must not apply.
        string data = model + ".data";
        var bytes = File.ReadAllBytes(data);
        bytes[100] ^= 0x01;
        File.WriteAllBytes(data, bytes);
        Hostile.AssertBadInput(CliRunner.Run("quantize", model, "--stats", stats, "--eval", Repo.EvalDir, "--eval-limit", "8", "--quiet"), "s.json", "different model");
    }
}
