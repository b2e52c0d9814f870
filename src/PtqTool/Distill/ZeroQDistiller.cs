using System.Diagnostics;
using System.Numerics.Tensors;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Distill;

/// <summary>How to distill.</summary>
public sealed record DistillOptions
{
    public int Count { get; init; } = 64;
    public int Iterations { get; init; } = 500;
    public double LearningRate { get; init; } = 0.2;
    public int Seed { get; init; }
    public int Threads { get; init; }
    /// <summary>
    /// The box real inputs live in, per channel along axis 1 (images: pixel 0 and 255 after scaling and normalization).
    /// Each Adam step is projected onto it; null leaves x unconstrained.
    /// </summary>
    public (float[] Lo, float[] Hi)? InputRange { get; init; }

    public DistillOptions Validated()
    {
        if (Count < 2) throw new PtqException($"--count: {Count} must be at least 2 (batch statistics need several samples)");
        if (Iterations < 1) throw new PtqException($"--iterations: {Iterations} must be at least 1");
        if (!(LearningRate > 0)) throw new PtqException($"--lr: {LearningRate} must be positive");
        return this;
    }
}

/// <summary>
/// The distilled batch, the loss after every iteration, and what one iteration cost (median over the iterations: the
/// gradient graph's run plus the Adam step) against one FP32 forward of the same batch (median of 30 runs).
/// </summary>
public sealed record DistillResult(FloatTensor Samples, double[] Losses, double IterationMs, double ForwardMs, int BatchNormLayers);

/// <summary>
/// ZeroQ (Cai et al., CVPR 2020): start from x ~ N(0, 1) and run Adam on x so that every BatchNormalization input's
/// per-channel batch mean and standard deviation match the running statistics stored in the model. Loss and gradient
/// come from the ONNX gradient graph; the Adam update (learning rate annealed on a cosine from --lr to 0) runs here with
/// TensorPrimitives.
/// </summary>
public static class ZeroQDistiller
{
    public const double Beta1 = 0.9, Beta2 = 0.999, AdamEpsilon = 1e-8;

    public static DistillResult Run(ModelProto model, int[] sampleShape, DistillOptions options, Action<int>? onIteration = null)
    {
        options.Validated();
        int[] shape = [options.Count, .. sampleShape];
        var zeroq = GradientGraphBuilder.Build(model, shape);
        var x = Gaussian(FloatTensor.Count(shape), options.Seed);
        Project(x, shape, options.InputRange);
        var m = new float[x.Length];
        var v = new float[x.Length];
        var step = new float[x.Length];
        var losses = new double[options.Iterations];
        var runnerOptions = new RunnerOptions { Threads = options.Threads };
        using var runner = OrtRunner.FromModel(zeroq.Model, runnerOptions, "ZeroQ gradient graph");
        var times = new double[options.Iterations];
        for (int it = 0; it < options.Iterations; it++)
        {
            long start = Stopwatch.GetTimestamp();
            var outputs = runner.Run(new FloatTensor(x, shape), [zeroq.Loss, zeroq.Gradient]);
            losses[it] = outputs[zeroq.Loss].Data[0];
            var g = outputs[zeroq.Gradient].Data;
            // Adam: m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; x ← x − lr·m̂/(√v̂ + ε)
            TensorPrimitives.Multiply(m, (float)Beta1, m);
            TensorPrimitives.MultiplyAdd(g, (float)(1 - Beta1), m, m);
            TensorPrimitives.Multiply(g, g, step);
            TensorPrimitives.Multiply(v, (float)Beta2, v);
            TensorPrimitives.MultiplyAdd(step, (float)(1 - Beta2), v, v);
            double c1 = 1 - Math.Pow(Beta1, it + 1), c2 = 1 - Math.Pow(Beta2, it + 1);
            // Cosine annealing: constant-rate Adam keeps bouncing out of the minimum (spikes of 10x late in the run).
            double lr = options.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * it / options.Iterations));
            TensorPrimitives.Multiply(v, (float)(1 / c2), step);
            TensorPrimitives.Sqrt(step, step);
            TensorPrimitives.Add(step, (float)AdamEpsilon, step);
            TensorPrimitives.Divide(m, step, step);
            TensorPrimitives.MultiplyAdd(step, (float)(-lr / c1), x, x);
            Project(x, shape, options.InputRange);
            times[it] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            onIteration?.Invoke(it + 1);
        }
        double iterationMs = Evaluation.Latency.Median(times);
        double forwardMs;
        var fixedShape = new OnnxGraph(model.Clone());
        fixedShape.FixInputShape(zeroq.Input, shape);
        using (var forward = OrtRunner.FromModel(fixedShape.Model, runnerOptions))
            forwardMs = Evaluation.Latency.MedianMilliseconds(forward, new FloatTensor(x, shape));
        return new DistillResult(new FloatTensor(x, shape), losses, iterationMs, forwardMs, zeroq.BatchNormLayers);
    }

    /// <summary>Clamps every value into its channel's [lo, hi] (channel = axis 1; one range for all when a single pair is given).</summary>
    public static void Project(float[] x, int[] shape, (float[] Lo, float[] Hi)? range)
    {
        if (range is not (float[] lo, float[] hi)) return;
        int channels = shape.Length > 1 ? shape[1] : 1, inner = x.Length / (shape[0] * channels);
        for (int i = 0; i < x.Length; i++)
        {
            int c = lo.Length == 1 ? 0 : (i / inner) % channels;
            x[i] = Math.Clamp(x[i], lo[c], hi[c]);
        }
    }

    /// <summary>Seeded standard normal values (Box–Muller), the starting point and the naive "gaussian" calibration set.</summary>
    public static float[] Gaussian(int count, int seed) => Scales.SyntheticSamples.Draw("normal", count, seed);
}
