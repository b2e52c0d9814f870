namespace PtqTool.Scales;

/// <summary>Splits a tensor along an axis and chooses one scale per slice (per-channel weights), in parallel.</summary>
public static class PerChannel
{
    public static QuantParams[] Choose(ReadOnlySpan<float> values, int[] shape, int axis, Losses.IScaleLoss loss, QuantSpec spec)
    {
        var channels = Split(values, shape, axis);
        var result = new QuantParams[channels.Length];
        Parallel.For(0, channels.Length, c => result[c] = loss.Choose(new SampleDistribution(channels[c]), spec));
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
