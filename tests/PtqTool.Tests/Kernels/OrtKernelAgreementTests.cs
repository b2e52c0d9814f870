using System.Runtime.InteropServices;
using PtqTool.Kernels;

namespace PtqTool.Tests.Kernels;

/// <summary>
/// ONNX Runtime's fused integer kernels compute exactly what the reference of this CPU's kernels predicts, on layers
/// built to tell pairings apart. Holds on any x86 CPU: a VNNI CPU must match the int32 reference, an AVX2-only CPU the
/// saturating (2j, 2j+1) pair reference (docs/cpu-targets.md shows both, the AVX2 one measured with CPUID masked).
/// Each case also checks that the two references really differ on it, so the comparison can tell the CPUs apart.
/// </summary>
public class OrtKernelAgreementTests
{
    public static IEnumerable<object[]> Layers() =>
    [
        ["conv C=16 (ConvSym path)", 16, 16, 1],
        ["conv C=3 (im2col GEMM path, pairs cross kernel taps)", 3, 16, 1],
        ["grouped conv C=8 in 2 groups", 8, 16, 2],
        ["depthwise conv C=16 (widening kernel)", 16, 16, 16],
        ["gemm K=36", 36, 24, 0],
        ["matmul K=36", 36, 24, -1],
    ];

    [Theory]
    [MemberData(nameof(Layers))]
    public void Fused_kernels_equal_the_reference_of_this_cpus_accumulation(string name, int inputs, int outputs, int group)
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64) return; // the reference pairs are x86's (ARM: conservative check only)
        var layer = Build(inputs, outputs, group, seed: inputs * 31 + outputs);
        var codes = InputCodes(layer.InputShape, seed: 5);
        var native = KernelTargets.Accumulation(CpuInfo.This.NativeTarget);
        var exact = layer.Reference(codes, AccumulationModel.Int32);
        var saturating = layer.Reference(codes, AccumulationModel.X86PairSaturating16);

        // The exact QDQ semantics (no fusion) equal the int32 reference: the harness itself is right.
        AssertClose(exact, layer.Run(codes, optimized: false), $"{name}: unfused QDQ vs int32 reference");
        var fused = layer.Run(codes, optimized: true);
        AssertClose(native == AccumulationModel.Int32 ? exact : saturating, fused, $"{name}: fused kernels on {CpuInfo.This.Describe()}");
        if (layer.Layout.AccumulatesExactlyOnX86) Assert.Equal(exact, saturating);
        else Assert.True(Differences(exact, saturating) > exact.Length / 20, $"{name}: the probe weights must make the references differ");
    }

    private static SingleLayerQdq Build(int inputs, int outputs, int group, int seed)
    {
        if (group > 0)
        {
            int[] shape = [outputs, inputs / group, 3, 3];
            var layout = ReductionLayout.Conv(shape, group);
            return SingleLayerQdq.Conv(2, inputs, outputs, 5, group, SingleLayerQdq.PairingProbeWeights(layout, shape.Aggregate(1, (a, b) => a * b), seed));
        }
        var l = group == 0 ? ReductionLayout.NByK(outputs, inputs) : ReductionLayout.KByN(inputs, outputs);
        var w = SingleLayerQdq.PairingProbeWeights(l, inputs * outputs, seed);
        return group == 0 ? SingleLayerQdq.Gemm(8, inputs, outputs, w) : SingleLayerQdq.MatMul(8, inputs, outputs, w);
    }

    /// <summary>Mostly high codes (where pairs saturate), some low ones.</summary>
    public static int[] InputCodes(int[] shape, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => rng.NextDouble() < 0.85 ? rng.Next(200, 256) : rng.Next(0, 256)).ToArray();
    }

    private static int Differences(int[] a, int[] b) => a.Zip(b).Count(p => p.First != p.Second);

    private static void AssertClose(int[] expected, int[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        int worst = 0, at = -1;
        for (int i = 0; i < expected.Length; i++)
            if (Math.Abs(expected[i] - actual[i]) > worst) { worst = Math.Abs(expected[i] - actual[i]); at = i; }
        // Requantization rounds acc·scale in float32 in the kernels and in double here: ties may differ by one code.
        Assert.True(worst <= 1, $"{what}: output {at} is {(at >= 0 ? actual[at] : 0)}, reference {(at >= 0 ? expected[at] : 0)}");
    }
}
