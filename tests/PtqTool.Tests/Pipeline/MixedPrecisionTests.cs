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
