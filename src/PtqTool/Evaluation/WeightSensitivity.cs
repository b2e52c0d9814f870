using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;
using PtqTool.Scales;
using PtqTool.Scales.Losses;

namespace PtqTool.Evaluation;

/// <summary>
/// ZeroQ's sensitivity of one weight tensor at k bits: Ω_i(k) = (1/N) Σ_j KL(M(θ; x_j) ‖ M(θ̃_i(k); x_j)), the model with
/// that tensor alone fake-quantized (per-channel, the weight loss's scales, activations in float), over N samples.
/// Class scores go through a softmax unless they already are probabilities; outputs that are not [batch, classes]
/// (maps, sequences) use each sample's relative squared error ‖f − f̃‖² / ‖f‖² instead of KL. Each variant is one
/// session; the FP32 outputs are computed once.
/// </summary>
public static class WeightSensitivity
{
    public static List<LayerChoices> Measure(ModelProto model, IReadOnlyList<WeightUse> weights, IReadOnlyList<int> bits,
        IScaleLoss loss, bool perChannel, IReadOnlyList<ModelFeed> batches, RunnerOptions options, Action<int>? progress = null)
    {
        var graph = new OnnxGraph(model);
        string output;
        var reference = new List<FloatTensor>();
        using (var fp32 = OrtRunner.FromModel(model, options, "FP32 model"))
        {
            output = fp32.OutputNames[0];
            foreach (var b in batches) reference.Add(fp32.Run(b, [output])[output]);
        }
        bool classes = reference[0].Shape.Length == 2;
        var probabilities = classes ? reference.Select(Probabilities).ToList() : null;
        var distinct = weights.GroupBy(w => w.Node.Input[w.InputIndex], StringComparer.Ordinal).Select(g => g.First()).ToList();
        var result = new List<LayerChoices>();
        int done = 0;
        foreach (var use in distinct)
        {
            string name = use.Node.Input[use.InputIndex];
            var tensor = graph.Initializer(name)!;
            var shape = TensorData.Shape(tensor);
            float[] original = graph.InitializerFloats(name);
            var omega = new List<double>();
            foreach (int k in bits)
            {
                var fake = FakeQuantized(original, shape, perChannel ? use.Axis : -1, loss, k);
                var variant = new OnnxGraph(model.Clone());
                variant.ReplaceInitializer(TensorData.FromFloats(name, shape, fake));
                using var runner = OrtRunner.FromModel(variant.Model, options, "sensitivity variant");
                double sum = 0;
                long samples = 0;
                for (int i = 0; i < batches.Count; i++)
                {
                    var y = runner.Run(batches[i], [output])[output];
                    if (classes)
                    {
                        var q = Probabilities(y);
                        for (int j = 0; j < q.Length; j++) sum += Kl(probabilities![i][j], q[j]);
                    }
                    else sum += RelativeErrors(reference[i], y);
                    samples += y.Batch;
                }
                omega.Add(sum / samples);
                progress?.Invoke(++done);
            }
            result.Add(new LayerChoices(name, original.Length, bits, omega));
        }
        return result;
    }

    /// <summary>Weights quantized to k-bit symmetric codes with the loss's scales and dequantized back to float.</summary>
    public static float[] FakeQuantized(float[] weights, int[] shape, int axis, IScaleLoss loss, int k)
    {
        var q = WeightQuantizer.Quantize(weights, shape, axis, loss, QuantizationOptions.SymmetricWeights(k));
        int inner = 1;
        if (q.Axis >= 0) for (int d = q.Axis + 1; d < shape.Length; d++) inner *= shape[d];
        int channels = q.Axis >= 0 ? shape[q.Axis] : 1;
        var result = new float[weights.Length];
        for (int i = 0; i < weights.Length; i++) result[i] = q.Values[i] * q.Scales[q.Axis >= 0 ? i / inner % channels : 0];
        return result;
    }

    /// <summary>Rows of a [batch, classes] output as probabilities: as they are when they already are (a Softmax output), otherwise softmax.</summary>
    public static double[][] Probabilities(FloatTensor scores)
    {
        if (scores.Shape.Length != 2)
            throw new PtqException($"sensitivity by KL needs class scores [batch, classes]; the output is [{string.Join(", ", scores.Shape)}]");
        int n = scores.Shape[0], c = scores.Shape[1];
        var rows = new double[n][];
        for (int r = 0; r < n; r++)
        {
            var row = scores.Data.AsSpan(r * c, c);
            double total = 0;
            bool probabilities = true;
            foreach (float v in row) { total += v; probabilities &= v >= 0; }
            probabilities &= Math.Abs(total - 1) < 1e-3;
            var p = new double[c];
            if (probabilities) { for (int i = 0; i < c; i++) p[i] = row[i]; }
            else
            {
                double max = double.NegativeInfinity, sum = 0;
                foreach (float v in row) max = Math.Max(max, v);
                for (int i = 0; i < c; i++) sum += p[i] = Math.Exp(row[i] - max);
                for (int i = 0; i < c; i++) p[i] /= sum;
            }
            rows[r] = p;
        }
        return rows;
    }

    /// <summary>Σ over the batch of each sample's ‖f − f̃‖² / ‖f‖² (maps and sequences, where KL over classes has no meaning).</summary>
    public static double RelativeErrors(FloatTensor fp32, FloatTensor quantized)
    {
        int per = fp32.Data.Length / fp32.Batch;
        double total = 0;
        for (int j = 0; j < fp32.Batch; j++)
        {
            double noise = 0, signal = 0;
            for (int i = j * per; i < (j + 1) * per; i++)
            {
                double d = fp32.Data[i] - quantized.Data[i];
                noise += d * d;
                signal += (double)fp32.Data[i] * fp32.Data[i];
            }
            total += noise / Math.Max(signal, 1e-30);
        }
        return total;
    }

    /// <summary>KL(p ‖ q) in nats; q's zeros are floored at 1e-12 so a class FP32 gives mass to is never free to lose.</summary>
    public static double Kl(double[] p, double[] q)
    {
        double kl = 0;
        for (int i = 0; i < p.Length; i++)
            if (p[i] > 0) kl += p[i] * Math.Log(p[i] / Math.Max(q[i], 1e-12));
        return Math.Max(0, kl);
    }
}
