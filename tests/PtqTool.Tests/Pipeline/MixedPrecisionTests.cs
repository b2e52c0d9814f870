using System.Text.Json.Nodes;
using PtqTool.Onnx;
using PtqTool.Scales;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Pipeline;

/// <summary>`ptq quantize --avg-bits`: what the report says was chosen is what the saved model holds, and it is the knapsack's optimum.</summary>
public class MixedPrecisionTests
{
    [Fact]
    public void Each_layer_holds_codes_of_its_chosen_width_and_the_choice_is_the_optimum_under_the_average()
    {
        string dir = Repo.TempDir(), output = Path.Combine(dir, "mixed.onnx"), report = Path.Combine(dir, "r.json");
        var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--calib", Repo.CalibDir, "--limit", "64", "--loss", "minmax",
            "--avg-bits", "5", "--target", "x86-vnni", "--out", output, "--report", report, "--quiet");
        Assert.True(code == 0, err);
        var mixed = JsonNode.Parse(File.ReadAllText(report))!["mixed_precision"]!;
        var layers = mixed["layers"]!.AsArray();
        var graph = new OnnxGraph(OnnxModelFile.Load(output));
        long parameters = 0, bitsTotal = 0;
        var choices = new List<LayerChoices>();
        foreach (var l in layers)
        {
            string weight = l!["weight"]!.GetValue<string>();
            int bits = l["bits"]!.GetValue<int>();
            long count = l["parameters"]!.GetValue<long>();
            var codes = TensorData.ToFloats(graph.Initializer(weight + "_quantized")!);
            Assert.Equal(count, codes.Length);
            int top = (1 << (bits - 1)) - 1;
            Assert.True(codes.All(v => Math.Abs(v) <= top), $"{weight}: codes beyond ±{top} for {bits} bits");
            // Each channel's largest weight uses the top code (min-max scales): the width is really used.
            Assert.Contains(codes, v => Math.Abs(v) == top);
            parameters += count;
            bitsTotal += count * bits;
            var by = l["sensitivity_by_bits"]!.AsObject();
            choices.Add(new LayerChoices(weight, count, by.Select(kv => int.Parse(kv.Key, System.Globalization.CultureInfo.InvariantCulture)).ToList(), by.Select(kv => kv.Value!.GetValue<double>()).ToList()));
        }
        Assert.True(bitsTotal <= 5 * parameters, $"average {(double)bitsTotal / parameters} bits");
        Assert.Equal((double)bitsTotal / parameters, mixed["average_bits"]!.GetValue<double>(), 9);
        // The reported Ω sum is the best any assignment of these layers reaches within the budget.
        var best = BitAllocation.Best(choices, 5 * parameters)!;
        Assert.Equal(best.Sensitivity, mixed["sensitivity"]!.GetValue<double>(), 9);
        Assert.Contains(layers, l => l!["bits"]!.GetValue<int>() < 8);
    }
}

public class MixedPrecisionStorageTests
{
    [Fact]
    public void With_int4_storage_the_budget_counts_stored_bits_and_the_weights_bytes_in_the_file_are_within_it()
    {
        string dir = Repo.TempDir(), output = Path.Combine(dir, "mixed4.onnx"), report = Path.Combine(dir, "r.json");
        var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--calib", Repo.CalibDir, "--limit", "64", "--sensitivity-samples", "32",
            "--avg-bits", "5", "--weight-storage", "int4", "--target", "x86-vnni", "--out", output, "--report", report, "--quiet");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(File.ReadAllText(report))!;
        var layers = json["mixed_precision"]!["layers"]!.AsArray();
        var graph = new OnnxGraph(OnnxModelFile.Load(output));
        long parameters = 0, storedBytes = 0;
        foreach (var l in layers)
        {
            var t = graph.Initializer(l!["weight"]!.GetValue<string>() + "_quantized")!;
            long n = TensorData.ElementCount(t);
            parameters += n;
            // The bytes the file holds for the codes, read from the tensor itself.
            storedBytes += t.RawData.Length;
            Assert.Equal(t.DataType == ElementType.Int4 ? (n + 1) / 2 : n, t.RawData.Length);
        }
        Assert.True(8 * storedBytes <= 5 * parameters + 8 * layers.Count, $"{storedBytes} bytes for {parameters} weights");
        Assert.Equal(storedBytes, json["model"]!["weight_bytes"]!.GetValue<long>());
        Assert.Contains(graph.Graph.Initializer, t => t.DataType == ElementType.Int4);
    }
}

public class MixedPrecisionOptionTests
{
    [Theory]
    [InlineData("quantize", "--avg-bits", "1.5")]
    [InlineData("quantize", "--avg-bits", "9")]
    [InlineData("pareto", "--points", "4,x")]
    [InlineData("pareto", "--points", "12")]
    public void Out_of_range_widths_are_bad_input_naming_the_option(string command, string option, string value)
    {
        var (code, _, err) = CliRunner.Run(command, Repo.Model("fmnist_cnn"), "--calib", Repo.CalibDir, option, value, "--out", Path.Combine(Repo.TempDir(), "x.md"), "--quiet");
        Assert.Equal(2, code);
        Assert.Contains(option, err);
    }
}

public class AutoFallbackTests
{
    [Fact]
    public void Raises_bits_only_until_the_gate_holds_and_the_saved_model_is_the_last_measured_one()
    {
        string dir = Repo.TempDir(), output = Path.Combine(dir, "fb.onnx"), report = Path.Combine(dir, "r.json");
        var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--calib", Repo.CalibDir, "--limit", "64", "--eval", Repo.EvalDir,
            "--eval-limit", "200", "--weight-bits", "4", "--min-sqnr", "22", "--auto-fallback", "--target", "x86-vnni", "--out", output, "--report", report);
        Assert.True(code == 0, err);
        // One calibration pass: the final run reuses the statistics the search measured on.
        Assert.Equal(1, System.Text.RegularExpressions.Regex.Count(err, "calibrating done"));
        var json = JsonNode.Parse(File.ReadAllText(report))!;
        var steps = json["auto_fallback"]!["steps"]!.AsArray();
        // W4A8 starts below the gate (16 dB on this model), so at least one raise was needed ...
        Assert.True(steps.Count >= 2, $"{steps.Count} steps");
        Assert.False(steps[0]!["passed"]!.GetValue<bool>());
        Assert.Null(steps[0]!["raised"]);
        // ... every measurement but the last failed the gate, the last passed: it stopped as soon as the gate held.
        for (int i = 0; i < steps.Count - 1; i++) Assert.False(steps[i]!["passed"]!.GetValue<bool>(), $"step {i} passed but the search went on");
        Assert.True(steps[^1]!["passed"]!.GetValue<bool>());
        foreach (var s in steps.Skip(1)) Assert.True(s!["to_bits"]!.GetValue<int>() > s["from_bits"]!.GetValue<int>());
        // The saved model is the last measured one: the same gated SQNR (on whichever accuracy holds for the target on
        // this CPU, as every step was), and its codes use the final widths.
        Assert.Equal(steps[^1]!["gate_value"]!.GetValue<double>(), json["gate"]!["value"]!.GetValue<double>(), 6);
        var graph = new OnnxGraph(OnnxModelFile.Load(output));
        foreach (var (weight, bits) in json["auto_fallback"]!["weight_bits"]!.AsObject())
        {
            int top = (1 << (bits!.GetValue<int>() - 1)) - 1;
            Assert.Equal(top, (int)TensorData.ToFloats(graph.Initializer(weight + "_quantized")!).Max(Math.Abs));
        }
    }

    /// <summary>
    /// uint4 activations keep the cnn far from a 99 dB gate with every weight at 8 bits, so the fallback keeps nodes in
    /// float: first a run that never passes lists every step, then a gate between two of its steps must stop exactly at
    /// the first step that reaches it, with the same nodes float, and the saved model must equal a plain --exclude run.
    /// </summary>
    [Fact]
    public void Keeps_nodes_in_float_in_leave_one_out_order_and_stops_at_the_first_set_that_passes()
    {
        string dir = Repo.TempDir();
        string[] common = ["quantize", Repo.Model("fmnist_cnn"), "--calib", Repo.CalibDir, "--limit", "32", "--eval", Repo.EvalDir, "--eval-limit", "100",
            "--activation-bits", "4", "--refine", "off", "--output-bias-correction", "off", "--target", "x86-vnni", "--quiet"];
        JsonNode Run(string name, int expected, params string[] extra)
        {
            string report = Path.Combine(dir, name + ".json");
            var (code, _, err) = CliRunner.Run([.. common, .. extra, "--out", Path.Combine(dir, name + ".onnx"), "--report", report]);
            Assert.True(code == expected, $"exit {code}: {err}");
            return JsonNode.Parse(File.ReadAllText(report))!;
        }
        var never = Run("never", 3, "--min-sqnr", "99", "--auto-fallback")["auto_fallback"]!;
        var steps = never["steps"]!.AsArray();
        var ranking = never["ranking"]!.AsArray();
        double Value(JsonNode? n, string key = "gate_value") => n![key]!.GetValue<double>();
        // Ranked best first; every node with a gain was kept, in that order, one per measurement after the start.
        for (int i = 1; i < ranking.Count; i++) Assert.True(Value(ranking[i - 1], "gate_value_alone_float") >= Value(ranking[i], "gate_value_alone_float"));
        var gainers = ranking.Where(c => Value(c, "gate_value_alone_float") > Value(steps[0])).Select(c => c!["node"]!.GetValue<string>()).ToList();
        Assert.NotEmpty(gainers);
        Assert.Equal(gainers, never["kept_float"]!.AsArray().Select(n => n!.GetValue<string>()).ToList());
        Assert.Equal(gainers, steps.Skip(1).Select(s => s!["kept_float"]!.GetValue<string>()).ToList());
        Assert.All(steps, s => Assert.False(s!["passed"]!.GetValue<bool>()));
        // Without --refine the first float step is the top node's own leave-one-out measurement.
        Assert.Equal(Value(ranking[0], "gate_value_alone_float"), Value(steps[1]), 9);

        // A gate just under the best step's value: the first step at or above it is where the search must stop.
        int best = Enumerable.Range(0, steps.Count).MaxBy(i => Value(steps[i]));
        double threshold = Value(steps[best]) - 1e-4;
        int stop = Enumerable.Range(0, steps.Count).First(i => Value(steps[i]) >= threshold);
        var json = Run("stops", 0, "--min-sqnr", threshold.ToString("R", System.Globalization.CultureInfo.InvariantCulture), "--auto-fallback");
        var fallback = json["auto_fallback"]!;
        Assert.Equal(stop + 1, fallback["steps"]!.AsArray().Count);
        Assert.True(fallback["steps"]!.AsArray()[^1]!["passed"]!.GetValue<bool>());
        var kept = fallback["kept_float"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
        Assert.Equal(gainers.Take(stop), kept);
        // The report names them in the options it ran with, and the saved model is what --exclude makes of them.
        Assert.Equal(kept, json["options"]!["exclude"]!.AsArray().Select(n => n!.GetValue<string>()).ToList());
        var excluded = Run("excluded", 0, ["--min-sqnr", "0", "--exclude", .. kept]);
        Assert.Equal(Value(excluded["gate"], "value"), Value(json["gate"], "value"), 9);
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "excluded.onnx")), File.ReadAllBytes(Path.Combine(dir, "stops.onnx")));
    }
}
