using System.Text.Json.Nodes;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Distill;

namespace PtqTool.Tests.Onnx;

/// <summary>LayerNorm and GELU spelled out in elementary ops: recognized in any arrangement, kept in float as wholes.</summary>
public class FloatUnitsTests
{
    private static readonly int[] Shape = [1, 6, 16];

    /// <summary>x → MatMul + bias → unit → MatMul → output; returns the model and the unit's inner tensors.</summary>
    private static (ModelProto Model, string UnitInput, string UnitOutput) Around(Func<TinyModels, string, string> unit, int seed = 5)
    {
        var m = new TinyModels(Shape, seed);
        string h = m.Op("Add", [m.Op("MatMul", ["x", m.Weight(16, 16)]), m.Weight(16)]);
        string u = unit(m, h);
        return (m.Finish(m.Op("MatMul", [u, m.Weight(16, 8)])), h, u);
    }

    private static string Scalar(TinyModels m, float v) => m.ConstValues([], [v]);

    private static string LayerNorm(TinyModels m, string x, bool mulSquare = false, bool affine = true, long meanAxis = -1)
    {
        string mean = m.Op("ReduceMean", [x], NodeAttributes.Ints("axes", [meanAxis]));
        string d = m.Op("Sub", [x, mean]);
        string sq = mulSquare ? m.Op("Mul", [d, d]) : m.Op("Pow", [d, Scalar(m, 2)]);
        string v = m.Op("ReduceMean", [sq], NodeAttributes.Ints("axes", [-1]));
        string y = m.Op("Div", [d, m.Op("Sqrt", [m.Op("Add", [v, Scalar(m, 1e-5f)])])]);
        return affine ? m.Op("Add", [m.Op("Mul", [y, m.Const([16], () => 1.5f)]), m.Const([16], () => 0.25f)]) : y;
    }

    public static IEnumerable<object[]> GeluSpellings() => [["0.5x · (1 + erf(x/√2))"], ["(x · (erf(x·0.7071) + 1)) · 0.5"], ["0.5 · x · (1 + tanh(0.7979 (x + 0.044715 x³)))"]];

    private static string Gelu(TinyModels m, string x, string spelling) => spelling switch
    {
        "0.5x · (1 + erf(x/√2))" => m.Op("Mul", [m.Op("Mul", [x, Scalar(m, 0.5f)]), m.Op("Add", [Scalar(m, 1), m.Op("Erf", [m.Op("Div", [x, Scalar(m, MathF.Sqrt(2))])])])]),
        "(x · (erf(x·0.7071) + 1)) · 0.5" => m.Op("Mul", [m.Op("Mul", [x, m.Op("Add", [m.Op("Erf", [m.Op("Mul", [x, Scalar(m, 0.70710678f)])]), Scalar(m, 1)])]), Scalar(m, 0.5f)]),
        "0.5 · x · (1 + tanh(0.7979 (x + 0.044715 x³)))" => m.Op("Mul", [m.Op("Mul", [Scalar(m, 0.5f), x]),
            m.Op("Add", [m.Op("Tanh", [m.Op("Mul", [m.Op("Add", [x, m.Op("Mul", [m.Op("Pow", [x, Scalar(m, 3)]), Scalar(m, 0.044715f)])]), Scalar(m, 0.7978846f)])]), Scalar(m, 1)])]),
        "x/2 · (1 + erf(x/2))" => m.Op("Mul", [m.Op("Mul", [x, Scalar(m, 0.5f)]), m.Op("Add", [Scalar(m, 1), m.Op("Erf", [m.Op("Mul", [x, Scalar(m, 0.5f)])])])]),
        _ => throw new ArgumentException(spelling),
    };

    private static (JsonNode Report, ModelProto Quantized) Quantize(ModelProto model)
    {
        string dir = Repo.TempDir(), path = Path.Combine(dir, "m.onnx"), output = Path.Combine(dir, "q.onnx"), report = Path.Combine(dir, "r.json");
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(model));
        var (code, _, err) = CliRunner.Run(["quantize", path, "--synthetic", "gaussian", "--count", "16", "--out", output, "--report", report, "--quiet"]);
        Assert.True(code == 0, err);
        return (JsonNode.Parse(File.ReadAllText(report))!, ModelProto.Parser.ParseFrom(File.ReadAllBytes(output)));
    }

    /// <summary>The tensors that a QuantizeLinear reads in the quantized model.</summary>
    private static HashSet<string> Quantized(ModelProto q) => q.Graph.Node.Where(n => n.OpType == "QuantizeLinear").Select(n => n.Input[0]).ToHashSet();

    [Theory]
    [InlineData(false, true, 9)]
    [InlineData(true, true, 9)]
    [InlineData(false, false, 7)]
    public void LayerNorm_is_found_with_or_without_its_affine_part(bool mulSquare, bool affine, int nodes)
    {
        var (model, input, output) = Around((m, x) => LayerNorm(m, x, mulSquare, affine));
        var units = FloatUnits.Find(new OnnxGraph(model));
        var unit = Assert.Single(units);
        Assert.Equal(("LayerNorm", input, output, nodes), (unit.Kind, unit.Input, unit.Output, unit.Nodes.Count));
    }

    [Fact]
    public void A_centering_over_other_axes_than_the_variance_is_not_a_LayerNorm()
    {
        var (model, _, _) = Around((m, x) => LayerNorm(m, x, meanAxis: 1));
        Assert.Empty(FloatUnits.Find(new OnnxGraph(model)));
    }

    [Theory]
    [MemberData(nameof(GeluSpellings))]
    public void Gelu_is_found_in_any_spelling(string spelling)
    {
        var (model, input, output) = Around((m, x) => Gelu(m, x, spelling));
        var unit = Assert.Single(FloatUnits.Find(new OnnxGraph(model)));
        Assert.Equal(("GELU", input, output), (unit.Kind, unit.Input, unit.Output));
        // Every node between the MatMul+bias and the last MatMul belongs to the unit.
        Assert.Equal(model.Graph.Node.Count - 3, unit.Nodes.Count);
    }

    [Fact]
    public void A_function_that_only_looks_like_gelu_is_not_one()
    {
        var (model, _, _) = Around((m, x) => Gelu(m, x, "x/2 · (1 + erf(x/2))"));
        Assert.Empty(FloatUnits.Find(new OnnxGraph(model)));
    }

    [Fact]
    public void An_inner_tensor_read_outside_keeps_the_pattern_from_being_a_unit()
    {
        var m = new TinyModels(Shape, 5);
        string h = m.Op("MatMul", ["x", m.Weight(16, 16)]);
        string scaled = m.Op("Mul", [h, Scalar(m, 0.70710678f)]);
        string g = m.Op("Mul", [m.Op("Mul", [h, Scalar(m, 0.5f)]), m.Op("Add", [m.Op("Erf", [scaled]), Scalar(m, 1)])]);
        var model = m.Finish(m.Op("Add", [g, scaled]));
        Assert.Empty(FloatUnits.Find(new OnnxGraph(model)));
    }

    [Fact]
    public void A_quantized_LayerNorm_stays_float_inside_and_ONNX_Runtime_fuses_its_normalization()
    {
        var (model, input, output) = Around((m, x) => LayerNorm(m, x));
        var inner = model.Graph.Node.SkipWhile(n => n.Output[0] != input).Skip(1).TakeWhile(n => n.Output[0] != output).Select(n => n.Output[0]).ToList();
        var (report, q) = Quantize(model);
        Assert.Equal(1, report["rewrite"]!["float_units"]!["LayerNorm"]!.GetValue<int>());
        Assert.Null(report["rewrite"]!["float_ops"]!["Sqrt"]);
        var quantized = Quantized(q);
        // The residual stream into a LayerNorm stays float (no quantized node reads it: its outlier channels would
        // flatten the rest; MiniLM's sentence cosine 0.956 -> 0.987, docs/transformers.md); what comes out is quantized.
        Assert.DoesNotContain(input, quantized);
        Assert.Contains(output, quantized);
        Assert.DoesNotContain(inner, quantized.Contains);
        // ONNX Runtime's own fusion reaches the float pattern (with no Q/DQ inside): a LayerNormalization kernel, or the
        // root-mean-square one behind the centering.
        var kernels = report["rewrite"]!["onnxruntime_ops"]!.AsObject();
        Assert.True(kernels.Any(kv => kv.Key.EndsWith("LayerNormalization", StringComparison.Ordinal)), kernels.ToJsonString());
        Assert.Null(kernels["Sqrt"]);
    }

    [Theory]
    [MemberData(nameof(GeluSpellings))]
    public void A_quantized_GELU_stays_float_inside(string spelling)
    {
        var (model, input, output) = Around((m, x) => Gelu(m, x, spelling));
        var inner = model.Graph.Node.SkipWhile(n => n.Output[0] != input).Skip(1).TakeWhile(n => n.Output[0] != output).Select(n => n.Output[0]).ToList();
        var (report, q) = Quantize(model);
        Assert.Equal(1, report["rewrite"]!["float_units"]!["GELU"]!.GetValue<int>());
        var quantized = Quantized(q);
        Assert.Contains(output, quantized);
        Assert.DoesNotContain(inner, quantized.Contains);
    }
}
