using PtqTool.Evaluation;
using PtqTool.Onnx;
using PtqTool.Rewrite;
using PtqTool.Scales.Losses;
using PtqTool.Tests.Distill;

namespace PtqTool.Tests.Evaluation;

/// <summary>Ω_i(k) against KL computed here from scratch: weights fake-quantized by hand, both models run in ONNX Runtime, softmax and KL in double.</summary>
public class WeightSensitivityTests
{
    [Fact]
    public void Omega_of_one_layer_is_the_mean_kl_between_fp32_and_that_layer_alone_quantized()
    {
        int[] shape = [6, 3, 8, 8];
        var m = new TinyModels(shape, seed: 21);
        string conv = m.Conv("x", 3, 6, 3);
        string pooled = m.Op("Flatten", [m.Op("GlobalAveragePool", [m.Op("Relu", [conv])])]);
        var model = m.Finish(m.Op("MatMul", [pooled, m.Weight(6, 5)]));
        var node = model.Graph.Node.First(n => n.OpType == "Conv");
        string weight = node.Input[1];
        var rng = new Random(4);
        var batches = Enumerable.Range(0, 2).Select(_ => (ModelFeed)new FloatTensor(Enumerable.Range(0, 6 * 3 * 64).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), shape)).ToList();
        int[] bits = [2, 4, 8];

        var measured = WeightSensitivity.Measure(model, [new WeightUse(node, 1, 0, 2)], bits, new MinMaxLoss(), perChannel: true, batches, new RunnerOptions());

        float[] w = new OnnxGraph(model).InitializerFloats(weight);
        using var fp32 = OrtRunner.FromModel(model);
        string output = fp32.OutputNames[0];
        var layer = Assert.Single(measured);
        Assert.Equal(weight, layer.Name);
        Assert.Equal(w.Length, layer.Parameters);
        for (int b = 0; b < bits.Length; b++)
        {
            using var q = OrtRunner.FromModel(WithMinMaxWeights(model, weight, 6, bits[b]));
            double sum = 0;
            int n = 0;
            foreach (var batch in batches)
            {
                var p = fp32.Run(batch, [output])[output].Data;
                var r = q.Run(batch, [output])[output].Data;
                for (int row = 0; row < 6; row++, n++) sum += Kl(Softmax(p, row, 5), Softmax(r, row, 5));
            }
            Assert.Equal(sum / n, layer.Sensitivity[b], 1e-9 + 1e-6 * sum / n);
        }
        Assert.True(layer.Sensitivity[0] > layer.Sensitivity[2], "2-bit weights must cost more than 8-bit ones");
    }

    [Fact]
    public void A_map_output_uses_each_samples_relative_squared_error()
    {
        int[] shape = [4, 2, 6, 6];
        var m = new TinyModels(shape, seed: 22);
        var model = m.Finish(m.Conv(m.Op("Relu", [m.Conv("x", 2, 4, 3)]), 4, 1, 1));
        var node = model.Graph.Node.First(n => n.OpType == "Conv");
        string weight = node.Input[1];
        var rng = new Random(5);
        var batch = new FloatTensor(Enumerable.Range(0, 4 * 2 * 36).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), shape);

        var layer = Assert.Single(WeightSensitivity.Measure(model, [new WeightUse(node, 1, 0, 2)], [4], new MinMaxLoss(), perChannel: true, [batch], new RunnerOptions()));

        using var fp32 = OrtRunner.FromModel(model);
        using var q = OrtRunner.FromModel(WithMinMaxWeights(model, weight, 4, 4));
        var f = fp32.Run(batch)[fp32.OutputNames[0]].Data;
        var g = q.Run(batch)[q.OutputNames[0]].Data;
        int size = f.Length / 4;
        double expected = Enumerable.Range(0, 4).Average(j =>
            Enumerable.Range(j * size, size).Sum(i => Math.Pow(f[i] - g[i], 2)) / Enumerable.Range(j * size, size).Sum(i => (double)f[i] * f[i]));
        Assert.True(expected > 0);
        Assert.Equal(expected, layer.Sensitivity[0], 1e-9 + 1e-6 * expected);
    }

    /// <summary>The model with one weight fake-quantized by hand: per output channel s = max|w| / (2^(k−1) − 1), w ↦ s·round(w/s).</summary>
    private static PtqTool.Onnx.Proto.ModelProto WithMinMaxWeights(PtqTool.Onnx.Proto.ModelProto model, string weight, int channels, int bits)
    {
        float[] w = new OnnxGraph(model).InitializerFloats(weight);
        int per = w.Length / channels, top = (1 << (bits - 1)) - 1;
        var fake = new float[w.Length];
        for (int c = 0; c < channels; c++)
        {
            float s = w.Skip(c * per).Take(per).Max(Math.Abs) / top;
            for (int i = c * per; i < (c + 1) * per; i++) fake[i] = (float)Math.Round(w[i] / s) * s;
        }
        var variant = model.Clone();
        var init = variant.Graph.Initializer.First(t => t.Name == weight);
        variant.Graph.Initializer.Remove(init);
        variant.Graph.Initializer.Add(TensorData.FromFloats(weight, TensorData.Shape(init), fake));
        return variant;
    }

    private static double[] Softmax(float[] logits, int row, int classes)
    {
        var e = Enumerable.Range(0, classes).Select(i => Math.Exp(logits[row * classes + i])).ToArray();
        double total = e.Sum();
        return e.Select(v => v / total).ToArray();
    }

    private static double Kl(double[] p, double[] q) => p.Select((v, i) => v * Math.Log(v / q[i])).Sum();
}
