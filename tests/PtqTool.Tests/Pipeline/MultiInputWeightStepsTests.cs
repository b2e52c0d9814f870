using Microsoft.ML.OnnxRuntime;
using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Data;

namespace PtqTool.Tests.Pipeline;

/// <summary>
/// The steps that hold samples in memory (learned rounding, --avg-bits) on a model with a float input and two int64
/// token inputs of changing sequence length (<see cref="TwoInputModel"/>), checked against ONNX Runtime's own outputs.
/// </summary>
public class MultiInputWeightStepsTests
{
    private static readonly InputSpec[] Inputs = TwoInputModel.Inputs;

    private static (string Model, string Calib, List<ModelFeed> Samples) Setup(string dir)
    {
        string model = Path.Combine(dir, "two.onnx");
        OnnxModelFile.Save(TwoInputModel.Build(), model);
        string calib = TwoInputModel.WriteSamples(Path.Combine(dir, "calib"), 40, [5, 7], seed: 1);
        var samples = Directory.GetFiles(calib).Order(StringComparer.Ordinal).Select(f => NamedInputs.Read(f, Inputs)).ToList();
        return (model, calib, samples);
    }

    private static readonly RunnerOptions Exact = new() { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL };

    /// <summary>Each sample's value of <paramref name="tensor"/> in <paramref name="model"/> (added as an output), rows of [N, K] joined.</summary>
    private static List<float[]> Rows(ModelProto model, string tensor, IReadOnlyList<ModelFeed> samples)
    {
        var copy = model.Clone();
        var graph = new OnnxGraph(copy);
        if (!graph.IsGraphOutput(tensor)) graph.AddOutput(tensor);
        using var session = OrtRunner.FromModel(copy, Exact);
        var rows = new List<float[]>();
        foreach (var s in samples)
        {
            var t = session.Run(s, [tensor])[tensor];
            int k = t.Shape[^1];
            for (int r = 0; r < t.Data.Length / k; r++) rows.Add(t.Data.AsSpan(r * k, k).ToArray());
        }
        return rows;
    }

    [Fact]
    public void AdaRound_on_a_two_input_model_lowers_each_layers_error_as_onnx_runtime_measures_it()
    {
        string dir = Repo.TempDir();
        var (model, calib, samples) = Setup(dir);
        string[] common = [model, "--calib", calib, "--batch", "8", "--weight-bits", "4", "--refine", "off", "--smoothquant", "off"];
        var (nearest, _, _) = CliRunner.Quantize(dir, "nearest", common);
        var (learned, report, _) = CliRunner.Quantize(dir, "adaround", [.. common, "--rounding", "adaround", "--rounding-target", "fp32", "--rounding-check", "off"]);
        var layers = report["rounding"]!["layers"]!.AsArray();
        Assert.Equal(40, report["rounding"]!["samples"]!.GetValue<int>());
        Assert.Equal(["W1", "W2"], layers.Select(l => l!["weight"]!.GetValue<string>()).Order());
        long changed = LearnedCodes.AssertOnlyCodesMoveByOneStep(nearest, learned, ["W1", "W2"], 7);
        Assert.Equal(layers.Sum(l => l!["changed_codes"]!.GetValue<long>()), changed);

        // The layer objective with the FP32 target, Σ over rows ‖x·W − x̃·Ŵ‖² / samples: x the layer's input in the float
        // model, x̃ the input the quantized MatMul reads (its dequantized copy), Ŵ the dequantized codes, all from ONNX Runtime.
        var fp32 = OnnxModelFile.Load(model);
        var floatGraph = new OnnxGraph(fp32);
        foreach (var (weight, node, input) in new[] { ("W1", "dense1", "x"), ("W2", "dense2", "r") })
        {
            double Error(ModelProto q)
            {
                var g = new OnnxGraph(q);
                var matmul = g.Graph.Node.Single(n => n.Name == node);
                var dq = g.Producer(matmul.Input[1])!;
                var codes = TensorData.ToFloats(g.Initializer(dq.Input[0])!);
                var scales = g.InitializerFloats(dq.Input[1]);
                float[] w = floatGraph.InitializerFloats(weight);
                int[] shape = TensorData.Shape(floatGraph.Initializer(weight)!);
                int k = shape[0], n = shape[1];
                var x = Rows(fp32, input, samples);
                var xq = Rows(q, matmul.Input[0], samples);
                double e = 0;
                for (int r = 0; r < x.Count; r++)
                    for (int c = 0; c < n; c++)
                    {
                        double a = 0, b = 0;
                        for (int i = 0; i < k; i++)
                        {
                            a += x[r][i] * (double)w[i * n + c];
                            b += xq[r][i] * (double)(codes[i * n + c] * scales[scales.Length == 1 ? 0 : c]);
                        }
                        e += (a - b) * (a - b);
                    }
                return e / samples.Count;
            }
            var layer = layers.Single(l => l!["weight"]!.GetValue<string>() == weight)!;
            // Layers are learned in graph order, each on inputs that carry the layers before it as learned: its nearest
            // baseline is the learned model with this layer's codes put back to nearest rounding's.
            var baseline = new OnnxGraph(learned.Clone());
            baseline.ReplaceInitializer(new OnnxGraph(nearest).Initializer(weight + "_quantized")!.Clone());
            double before = Error(baseline.Model), after = Error(learned);
            Assert.Equal(before, layer["nearest_error"]!.GetValue<double>(), before * 1e-3);
            Assert.Equal(after, layer["error"]!.GetValue<double>(), Math.Max(after, 1e-9) * 1e-3);
            Assert.True(after <= before * (1 + 1e-6), $"{weight}: {after} vs nearest {before}");
        }
        Assert.True(changed > 0);
        ActivationQdqCheck.Exact(learned, samples[0]);
    }

    [Fact]
    public void Mixed_precision_on_a_two_input_model_measures_each_layer_by_onnx_runtime_kl()
    {
        string dir = Repo.TempDir();
        var (model, calib, samples) = Setup(dir);
        var (quantized, report, _) = CliRunner.Quantize(dir, "mixed", model, "--calib", calib, "--batch", "8", "--refine", "off",
            "--weight-loss", "minmax", "--avg-bits", "5");
        var mixed = report["mixed_precision"]!;
        Assert.Equal(40, mixed["samples"]!.GetValue<int>());
        var layers = mixed["layers"]!.AsArray();
        Assert.Equal(["W1", "W2"], layers.Select(l => l!["weight"]!.GetValue<string>()).Order());
        long parameters = layers.Sum(l => l!["parameters"]!.GetValue<long>());
        double average = layers.Sum(l => l!["parameters"]!.GetValue<long>() * l["bits"]!.GetValue<int>()) / (double)parameters;
        Assert.Equal(average, mixed["average_bits"]!.GetValue<double>(), 1e-9);
        Assert.True(average <= 5);

        // Ω(k) of each weight: the FP32 model with that weight alone at k-bit symmetric per-column min-max codes, the
        // mean over the 40 samples of KL(softmax(y) ‖ softmax(ỹ)), both outputs from ONNX Runtime.
        var fp32 = OnnxModelFile.Load(model);
        using var reference = OrtRunner.FromModel(fp32, Exact);
        var y = samples.Select(s => reference.Run(s, ["y"])["y"]).ToList();
        foreach (var layer in layers)
        {
            string weight = layer!["weight"]!.GetValue<string>();
            var graph = new OnnxGraph(fp32.Clone());
            var init = graph.Initializer(weight)!;
            int[] shape = TensorData.Shape(init);
            float[] w = graph.InitializerFloats(weight);
            foreach (var (key, value) in layer["sensitivity_by_bits"]!.AsObject())
            {
                int bits = int.Parse(key, System.Globalization.CultureInfo.InvariantCulture);
                int max = (1 << (bits - 1)) - 1, columns = shape[1];
                var fake = new float[w.Length];
                for (int c = 0; c < columns; c++)
                {
                    float s = 0;
                    for (int i = c; i < w.Length; i += columns) s = Math.Max(s, Math.Abs(w[i]));
                    s /= max;
                    for (int i = c; i < w.Length; i += columns) fake[i] = s * Math.Clamp(MathF.Round(w[i] / s), -max, max);
                }
                graph.ReplaceInitializer(TensorData.FromFloats(weight, shape, fake));
                using var variant = OrtRunner.FromModel(graph.Model, Exact);
                double kl = 0;
                for (int j = 0; j < samples.Count; j++)
                {
                    var p = Softmax(y[j].Data);
                    var q = Softmax(variant.Run(samples[j], ["y"])["y"].Data);
                    for (int c = 0; c < p.Length; c++) kl += p[c] * Math.Log(p[c] / q[c]);
                }
                double expected = kl / samples.Count;
                Assert.Equal(expected, value!.GetValue<double>(), Math.Max(expected * 1e-3, 1e-7));
            }
            // The file's codes for the weight lie within its chosen width.
            int chosen = layer["bits"]!.GetValue<int>(), limit = (1 << (chosen - 1)) - 1;
            Assert.All(TensorData.ToFloats(new OnnxGraph(quantized).Initializer(weight + "_quantized")!), v => Assert.InRange(v, -limit, limit));
        }
        ActivationQdqCheck.Exact(quantized, samples[0]);
    }

    private static double[] Softmax(float[] row)
    {
        double max = row.Max();
        var e = row.Select(v => Math.Exp(v - max)).ToArray();
        double sum = e.Sum();
        return e.Select(v => v / sum).ToArray();
    }
}
