using System.Diagnostics;
using PtqTool.Onnx;

namespace PtqTool.Evaluation;

/// <summary>Wall time of one batch through a model, after warm-up runs; FP32 and INT8 are measured in the same process and settings.</summary>
public static class Latency
{
    public static double MeanMilliseconds(OrtRunner runner, FloatTensor batch, int warmup = 3, int runs = 20)
    {
        for (int i = 0; i < warmup; i++) Infer(runner, batch);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < runs; i++) Infer(runner, batch);
        return clock.Elapsed.TotalMilliseconds / runs;
    }

    /// <summary>Median wall time of one batch over <paramref name="runs"/> timed runs after warm-up: robust to other work on the machine.</summary>
    public static double MedianMilliseconds(OrtRunner runner, FloatTensor batch, int warmup = 3, int runs = 30)
    {
        for (int i = 0; i < warmup; i++) Infer(runner, batch);
        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            Infer(runner, batch);
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        return Median(times);
    }

    /// <summary>
    /// Medians of two models on the same batch, timed alternately (a, b, a, b, …) after warm-up, so load on the machine
    /// and frequency changes fall on both alike.
    /// </summary>
    public static (double A, double B) CompareMedians(OrtRunner a, OrtRunner b, FloatTensor batch, int warmup = 3, int runs = 30)
    {
        for (int i = 0; i < warmup; i++) { Infer(a, batch); Infer(b, batch); }
        var ta = new double[runs];
        var tb = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            Infer(a, batch);
            ta[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            start = Stopwatch.GetTimestamp();
            Infer(b, batch);
            tb[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        return (Median(ta), Median(tb));
    }

    /// <summary>
    /// One inference whose outputs are read in place and dropped: timing measures ONNX Runtime, not a managed copy of
    /// the outputs, and thirty runs of a large output leave no garbage (it had raised peak RSS by 50 MiB on a map model).
    /// </summary>
    private static void Infer(OrtRunner runner, FloatTensor batch) => runner.RunAndDrop(batch);

    public static double Median(double[] values)
    {
        if (values.Length == 0) throw new ArgumentException("no values", nameof(values));
        var sorted = values.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
