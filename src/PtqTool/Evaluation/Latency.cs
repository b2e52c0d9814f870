using System.Diagnostics;
using System.Runtime.Intrinsics.X86;
using PtqTool.Onnx;

namespace PtqTool.Evaluation;

/// <summary>Wall time of one batch through a model, after warm-up runs; FP32 and INT8 are measured in the same process and settings.</summary>
public static class Latency
{
    public static double MeanMilliseconds(OrtRunner runner, FloatTensor batch, int warmup = 3, int runs = 20)
    {
        for (int i = 0; i < warmup; i++) runner.Run(batch);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < runs; i++) runner.Run(batch);
        return clock.Elapsed.TotalMilliseconds / runs;
    }

    /// <summary>Median wall time of one batch over <paramref name="runs"/> timed runs after warm-up: robust to other work on the machine.</summary>
    public static double MedianMilliseconds(OrtRunner runner, FloatTensor batch, int warmup = 3, int runs = 30)
    {
        for (int i = 0; i < warmup; i++) runner.Run(batch);
        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            runner.Run(batch);
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        return Median(times);
    }

    public static double Median(double[] values)
    {
        if (values.Length == 0) throw new ArgumentException("no values", nameof(values));
        var sorted = values.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>The CPU's integer dot-product instruction sets, which decide whether int8 kernels are fast (and whether u8s8 can saturate).</summary>
    public static string CpuFeatures()
    {
        var f = new List<string>();
        if (Avx512F.IsSupported) f.Add("AVX-512");
        if (AvxVnni.IsSupported) f.Add("AVX-VNNI");
        if (Avx10v1.IsSupported) f.Add("AVX10.1");
        if (Avx2.IsSupported) f.Add("AVX2");
        if (f.Count == 0) f.Add(System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString());
        return $"{Environment.ProcessorCount} cores, {string.Join(" ", f)}";
    }
}
