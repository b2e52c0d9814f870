using PtqTool.Kernels;
using PtqTool.Onnx;
using PtqTool.Scales;
using PtqTool.Scales.Losses;

namespace PtqTool.Rewrite;

/// <summary>A quantized weight: integer values, one scale per channel (or one), zero points all 0 (symmetric).</summary>
/// <param name="BoundedPairs">Pairs of the kernel's reduction order moved by <see cref="PairBound"/> so that no int16 pair can saturate.</param>
public sealed record QuantizedWeight(int[] Values, float[] Scales, int Axis, int RaisedChannels, int BoundedPairs = 0)
{
    /// <summary>s·q of every element, in the weight's layout of <paramref name="shape"/> (float32, as DequantizeLinear computes it).</summary>
    public float[] Dequantized(int[] shape)
    {
        int channels = Axis >= 0 ? shape[Axis] : 1, inner = 1;
        if (Axis >= 0) for (int i = Axis + 1; i < shape.Length; i++) inner *= shape[i];
        var v = new float[Values.Length];
        for (int i = 0; i < v.Length; i++) v[i] = Scales[Axis >= 0 ? (i / inner) % channels : 0] * Values[i];
        return v;
    }
}

/// <summary>Asks <see cref="WeightQuantizer"/> to bound the pairs of this reduction order for activations up to <paramref name="ActivationMax"/> (x86 u8 domain).</summary>
public sealed record PairConstraint(ReductionLayout Layout, int ActivationMax);

/// <summary>Chooses weight scales with the configured loss and quantizes the weights; raises a channel's scale when its bias would overflow int32.</summary>
public static class WeightQuantizer
{
    /// <summary>Largest |bias| / (x_scale·w_scale) allowed, a little under int32's range.</summary>
    public const double BiasLimit = int.MaxValue * 0.99;

    public static QuantizedWeight Quantize(float[] weights, int[] shape, int axis, IScaleLoss loss, QuantSpec spec,
        float[]? bias = null, double inputScale = 0, PairConstraint? pairs = null)
    {
        bool perChannel = axis >= 0;
        var parameters = perChannel
            ? PerChannel.Choose(weights, shape, axis, loss, spec)
            : [loss.Choose(new SampleDistribution(weights), spec)];
        var scales = parameters.Select(p => (float)p.Scale).ToArray();
        int raised = 0;
        if (bias is not null && inputScale > 0)
        {
            for (int c = 0; c < scales.Length; c++)
            {
                double largest = perChannel ? Math.Abs(bias[c]) : bias.Max(Math.Abs);
                double needed = largest / (inputScale * BiasLimit);
                if (scales[c] < needed) { scales[c] = (float)needed; raised++; }
            }
        }
        int channels = perChannel ? shape[axis] : 1, inner = 1;
        if (perChannel) for (int i = axis + 1; i < shape.Length; i++) inner *= shape[i];
        var q = new int[weights.Length];
        for (int i = 0; i < weights.Length; i++)
        {
            int c = perChannel ? (i / inner) % channels : 0;
            q[i] = UniformQuantizer.Quantize(weights[i], scales[c], 0, spec.Range);
        }
        int bounded = 0;
        if (pairs is not null && !pairs.Layout.AccumulatesExactlyOnX86)
            bounded = PairBound.Apply(weights, pairs.Layout, c => perChannel ? c % channels : 0, scales, q, pairs.ActivationMax, spec.Range.Max);
        return new QuantizedWeight(q, scales, perChannel ? axis : -1, raised, bounded);
    }

    /// <summary>int32 bias with scale x_scale·w_scale[c] (computed in float32, as ONNX Runtime's fused kernels assume).</summary>
    public static (int[] Values, float[] Scales) QuantizeBias(float[] bias, float inputScale, float[] weightScales)
    {
        var values = new int[bias.Length];
        var scales = new float[bias.Length];
        for (int c = 0; c < bias.Length; c++)
        {
            scales[c] = inputScale * weightScales[weightScales.Length == 1 ? 0 : c];
            values[c] = (int)Math.Clamp(Math.Round(bias[c] / (double)scales[c], MidpointRounding.ToEven), int.MinValue, int.MaxValue);
        }
        return (values, scales);
    }
}
