using System.Diagnostics;
using System.Runtime.Intrinsics.X86;
using PtqTool.Onnx;

namespace PtqTool.Evaluation;

/// <summary>Mean wall time of one batch through a model, after warm-up runs; FP32 and INT8 are measured in the same process and settings.</summary>
public static class Latency
{
    public static double MeanMilliseconds(OrtRunner runner, FloatTensor batch, int warmup = 3, int runs = 20)
    {
        for (int i = 0; i < warmup; i++) runner.Run(batch);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < runs; i++) runner.Run(batch);
        return clock.Elapsed.TotalMilliseconds / runs;
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
