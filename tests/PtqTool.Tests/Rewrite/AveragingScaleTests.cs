using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Distill;

namespace PtqTool.Tests.Rewrite;

/// <summary>A mean is far narrower than the tensor it averages: pooling outputs are quantized on their own range.</summary>
public class AveragingScaleTests
{
    [Theory]
    [InlineData("GlobalAveragePool")]
    [InlineData("AveragePool")]
    public void A_pooled_mean_gets_the_scale_of_its_own_range_not_its_inputs(string op)
    {
        int[] shape = [1, 4, 12, 12];
        var m = new TinyModels(shape, seed: 11);
        string conv = m.Conv("x", 4, 8, 3);
        string pooled = op == "GlobalAveragePool"
            ? m.Op(op, [conv])
            : m.Op(op, [conv], NodeAttributes.Ints("kernel_shape", [5, 5]), NodeAttributes.Ints("strides", [5, 5]));
        var model = m.Finish(m.Conv(pooled, 8, 4, 1));
        string dir = Repo.TempDir(), path = Path.Combine(dir, "m.onnx"), output = Path.Combine(dir, "q.onnx"), data = Path.Combine(dir, "calib");
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(model));
        Directory.CreateDirectory(data);
        var rng = new Random(12);
        const int count = 24;
        var values = Enumerable.Range(0, count * 4 * 12 * 12).Select(_ => (float)(rng.NextDouble() * 6 - 3)).ToArray();
        File.WriteAllBytes(Path.Combine(data, "samples.npy"), NpyReader.Write(values, [count, 4, 12, 12]));
        var (code, _, err) = CliRunner.Run("quantize", path, "--calib", data, "--loss", "minmax", "--refine", "off", "--out", output, "--quiet");
        Assert.True(code == 0, err);

        // The reference: the pooled tensor's range over the same samples, from ONNX Runtime's FP32 run.
        using var fp32 = OrtRunner.FromModel(OutputGroups.Augment(model, [pooled, conv]));
        double lo = 0, hi = 0, convLo = 0, convHi = 0;
        for (int i = 0; i < count; i++)
        {
            var outputs = fp32.Run(new FloatTensor(values.AsSpan(i * 576, 576).ToArray(), shape), [pooled, conv]);
            lo = Math.Min(lo, outputs[pooled].Data.Min()); hi = Math.Max(hi, outputs[pooled].Data.Max());
            convLo = Math.Min(convLo, outputs[conv].Data.Min()); convHi = Math.Max(convHi, outputs[conv].Data.Max());
        }
        var q = new OnnxGraph(OnnxModelFile.Load(output));
        double scale = TensorData.ToFloats(q.Initializer(pooled + "_scale")!)[0];
        Assert.Equal((hi - lo) / 255, scale, 1e-5 * scale + 1e-7);
        // ... and not the input's, several times wider here.
        Assert.True((convHi - convLo) / 255 > 2 * scale, $"input step {(convHi - convLo) / 255}, pooled step {scale}");
    }
}
