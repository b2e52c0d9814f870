using PtqTool.Evaluation;
using PtqTool.Kernels;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Kernels;

public class SaturationCheckTests
{
    [Fact]
    public void An_unsafe_layer_is_flagged_on_exactly_the_channels_that_saturate()
    {
        int[] shape = [24, 16, 3, 3];
        var layout = ReductionLayout.Conv(shape, 1);
        var layer = SingleLayerQdq.Conv(1, 16, 24, 5, 1, SingleLayerQdq.PairingProbeWeights(layout, shape.Aggregate(1, (a, b) => a * b), 7));
        var optimized = FusedOps.OptimizedGraph(layer.Model, "layer");
        var avx2 = SaturationCheck.Run(layer.Model, optimized, KernelTarget.X86Avx2).Layers.Single();
        // Kinds 0 and 1 hold a ±120 pair at (2j, 2j+1); kind 2 straddles two pairs and is safe under x86's pairing.
        Assert.Equal("QLinearConv", avx2.Kernel);
        Assert.Equal(16, avx2.Verdict.OverflowingChannels);
        Assert.Equal(2 * 120 * 255 - 32767, avx2.Verdict.WorstExcess);
        // Any pairing (portable) also flags the straddling channels; VNNI accumulates in int32.
        Assert.Equal(24, SaturationCheck.Run(layer.Model, optimized, KernelTarget.Portable).Layers.Single().Verdict.OverflowingChannels);
        Assert.False(SaturationCheck.Run(layer.Model, optimized, KernelTarget.X86Vnni).CanSaturate);
    }

    [Fact]
    public void The_check_agrees_with_the_reference_outputs()
    {
        // A flagged channel is one where some input makes the saturating reference differ from the exact one.
        int[] shape = [12, 8, 3, 3];
        var layout = ReductionLayout.Conv(shape, 1);
        var layer = SingleLayerQdq.Conv(1, 8, 12, 4, 1, SingleLayerQdq.PairingProbeWeights(layout, shape.Aggregate(1, (a, b) => a * b), 2));
        var codes = Enumerable.Repeat(255, 8 * 16).ToArray();
        var exact = layer.Reference(codes, AccumulationModel.Int32);
        var saturating = layer.Reference(codes, AccumulationModel.X86PairSaturating16);
        var verdict = SaturationCheck.Run(layer.Model, FusedOps.OptimizedGraph(layer.Model, "layer"), KernelTarget.X86Avx2).Layers.Single().Verdict;
        int differing = Enumerable.Range(0, 12).Count(c => Enumerable.Range(0, 16).Any(p => exact[c * 16 + p] != saturating[c * 16 + p]));
        Assert.Equal(verdict.OverflowingChannels, differing);
    }

    public static IEnumerable<object[]> Models() => Repo.BundledModels.Select(m => new object[] { m });

    [Theory]
    [MemberData(nameof(Models))]
    public void Ptq_check_flags_vnni_models_for_avx2_and_passes_avx2_models(string model)
    {
        string dir = Repo.TempDir();
        foreach (var target in new[] { "x86-vnni", "x86-avx2" })
        {
            var (code, _, err) = CliRunner.Run("quantize", Repo.Model(model), "--calib", Repo.CalibDir, "--limit", "64", "--eval-limit", "32",
                "--target", target, "--out", Path.Combine(dir, $"{target}.onnx"), "--quiet");
            Assert.True(code == 0, err);
        }
        var vnni = CliRunner.Run("check", Path.Combine(dir, "x86-vnni.onnx"), "--target", "x86-avx2");
        Assert.True(vnni.Code == 3, vnni.Out + vnni.Err);
        Assert.Contains("can saturate", vnni.Out);
        var avx2 = CliRunner.Run("check", Path.Combine(dir, "x86-avx2.onnx"), "--target", "x86-avx2");
        Assert.True(avx2.Code == 0, avx2.Out + avx2.Err);
        Assert.Contains("no integer layer can saturate", avx2.Out);
        Assert.Equal(0, CliRunner.Run("check", Path.Combine(dir, "x86-vnni.onnx"), "--target", "x86-vnni").Code);
    }
}
