using System.Diagnostics;
using PtqTool.Onnx;

namespace PtqTool.Evaluation;

/// <summary>Wall time of one batch through a model, after warm-up runs; FP32 and INT8 are measured in the same process and settings.</summary>
public static class Latency
{
    public static double MeanMilliseconds(OrtRunner runner, ModelFeed batch, int warmup = 3, int runs = 20)
    {
        for (int i = 0; i < warmup; i++) Infer(runner, batch);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < runs; i++) Infer(runner, batch);
        return clock.Elapsed.TotalMilliseconds / runs;
    }

    /// <summary>Median wall time of one batch over <paramref name="runs"/> timed runs after warm-up: robust to other work on the machine.</summary>
    public static double MedianMilliseconds(OrtRunner runner, ModelFeed batch, int warmup = 3, int runs = 30)
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

    /// <summary>Medians of two models on the same batch, timed in alternating blocks (<see cref="Interleaved"/>).</summary>
    public static (double A, double B) CompareMedians(OrtRunner a, OrtRunner b, ModelFeed batch, int warmup = 3, int runs = 30)
    {
        var times = Interleaved([() => Infer(a, batch), () => Infer(b, batch)], warmup, runs);
        return (Median(times[0]), Median(times[1]));
    }

    /// <summary>Timed runs of one block of a model before the next model's block.</summary>
    public const int BlockRuns = 15;

    /// <summary>Untimed time at the start of each block (at least one run): longer than an idle session's threads spin.</summary>
    public const double SettleMs = 80;

    /// <summary>
    /// Times <paramref name="runs"/> calls of each action after <paramref name="warmup"/> each, in blocks that alternate
    /// between them so that load on the machine and clock changes fall on all alike. Each block starts with untimed runs
    /// for <paramref name="settleMs"/> (at least one): after a run, ONNX Runtime's idle intra-op threads spin on their
    /// cores for a while (2^20 pause instructions: about 20 ms on the AMD EPYC here), and a run of another session in
    /// that window competes with them. Timing runs of two sessions one after the other (a, b, a, b, …) measured, on the
    /// sample ResNet at batch 32 here, FP32 18.6 ms instead of 8–10 ms alone and INT8 5.3 ms instead of 3.6 ms: a
    /// speedup of 3.5× where each model alone gives about 2.5×.
    /// </summary>
    public static double[][] Interleaved(IReadOnlyList<Action> infer, int warmup, int runs, int block = BlockRuns, double settleMs = SettleMs)
    {
        foreach (var f in infer) for (int i = 0; i < warmup; i++) f();
        var times = infer.Select(_ => new double[runs]).ToArray();
        for (int done = 0; done < runs; done += block)
        {
            int count = Math.Min(block, runs - done);
            for (int k = 0; k < infer.Count; k++)
            {
                long settle = Stopwatch.GetTimestamp();
                do infer[k](); while (Stopwatch.GetElapsedTime(settle).TotalMilliseconds < settleMs);
                for (int i = 0; i < count; i++)
                {
                    long start = Stopwatch.GetTimestamp();
                    infer[k]();
                    times[k][done + i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                }
            }
        }
        return times;
    }

    /// <summary>
    /// One inference whose outputs are read in place and dropped: timing measures ONNX Runtime, not a managed copy of
    /// the outputs, and thirty runs of a large output leave no garbage (it had raised peak RSS by 50 MiB on a map model).
    /// </summary>
    private static void Infer(OrtRunner runner, ModelFeed batch) => runner.RunAndDrop(batch);

    public static double Median(double[] values)
    {
        if (values.Length == 0) throw new ArgumentException("no values", nameof(values));
        var sorted = values.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
