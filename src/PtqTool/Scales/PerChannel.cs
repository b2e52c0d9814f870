namespace PtqTool.Scales;

/// <summary>Splits a tensor along an axis and chooses one scale per slice (per-channel weights), in parallel.</summary>
public static class PerChannel
{
    /// <summary>
    /// Channels with fewer values than this (a first 3×3 conv on one input channel, a depthwise 3×3: 9 values) use
    /// minmax: an MSQE or QSin minimum over a handful of values mostly reflects how they happen to align with the grid,
    /// and clipping one of them costs the layer's output far more than the rounding it saves (docs/results.md).
    /// </summary>
    public const int MinValuesForOptimizingLoss = 32;

    public static QuantParams[] Choose(ReadOnlySpan<float> values, int[] shape, int axis, Losses.IScaleLoss loss, QuantSpec spec)
    {
        var channels = Split(values, shape, axis);
        var result = new QuantParams[channels.Length];
        var minmax = new Losses.MinMaxLoss();
        Parallel.For(0, channels.Length, Parallelism.Bounded, c =>
        {
            var rule = channels[c].Length < MinValuesForOptimizingLoss ? minmax : loss;
            result[c] = rule.Choose(new SampleDistribution(channels[c]), spec);
        });
        return result;
    }

    /// <summary>The values of each index along <paramref name="axis"/>, gathered into contiguous arrays.</summary>
    public static float[][] Split(ReadOnlySpan<float> values, int[] shape, int axis)
    {
        if (axis < 0) axis += shape.Length;
        int channels = shape[axis], inner = 1, outer = 1;
        for (int i = axis + 1; i < shape.Length; i++) inner *= shape[i];
        for (int i = 0; i < axis; i++) outer *= shape[i];
        var result = new float[channels][];
        for (int c = 0; c < channels; c++) result[c] = new float[outer * inner];
        for (int o = 0; o < outer; o++)
            for (int c = 0; c < channels; c++)
                values.Slice((o * channels + c) * inner, inner).CopyTo(result[c].AsSpan(o * inner, inner));
        return result;
    }
}
