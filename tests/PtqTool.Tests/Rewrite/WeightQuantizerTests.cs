using PtqTool.Rewrite;
using PtqTool.Scales;
using PtqTool.Scales.Losses;

namespace PtqTool.Tests.Rewrite;

public class WeightQuantizerTests
{
    private static readonly QuantSpec Int8Weights = new(new IntegerRange(-127, 127), Symmetric: true);

    [Fact]
    public void Per_channel_values_are_round_of_weight_over_channel_scale()
    {
        // shape [2, 3]: channel 0 max |w| = 1.27 → s = 0.01; channel 1 max |w| = 0.254 → s = 0.002.
        float[] w = [1.27f, -0.5f, 0.004f, 0.254f, -0.1f, 0.0031f];
        var q = WeightQuantizer.Quantize(w, [2, 3], 0, new MinMaxLoss(), Int8Weights);
        Assert.Equal(0.01f, q.Scales[0], 6);
        Assert.Equal(0.002f, q.Scales[1], 6);
        Assert.Equal(new[] { 127, -50, 0, 127, -50, 2 }, q.Values);
        Assert.Equal(0, q.RaisedChannels);
    }

    [Fact]
    public void A_bias_that_would_overflow_int32_raises_its_channel_scale()
    {
        float[] w = [0.01f, -0.02f, 0.5f, 0.25f];
        float[] bias = [30_000f, 0.1f];
        const double inputScale = 1e-6;
        // Channel 0: minmax scale 0.02/127 ≈ 1.6e-4; 30000 / (1e-6 · 1.6e-4) ≈ 1.9e14 ≫ 2^31.
        var q = WeightQuantizer.Quantize(w, [2, 2], 0, new MinMaxLoss(), Int8Weights, bias, inputScale);
        Assert.Equal(1, q.RaisedChannels);
        Assert.True(Math.Abs(bias[0]) / (inputScale * q.Scales[0]) <= int.MaxValue);
        Assert.Equal(0.5f / 127, q.Scales[1], 7); // the other channel is untouched
        var (values, scales) = WeightQuantizer.QuantizeBias(bias, (float)inputScale, q.Scales);
        Assert.Equal((float)inputScale * q.Scales[0], scales[0]);
        Assert.Equal(Math.Round(bias[0] / (double)scales[0]), values[0], 0);
        Assert.InRange(values[0], -int.MaxValue, int.MaxValue);
        Assert.Equal(Math.Round(bias[1] / (double)scales[1]), values[1], 0);
    }
}
