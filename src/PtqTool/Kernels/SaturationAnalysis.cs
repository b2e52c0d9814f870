namespace PtqTool.Kernels;

/// <summary>The worst pair sums one output channel can reach, in the kernel's domain.</summary>
public readonly record struct ChannelExtremes(int High, int Low)
{
    public bool CanOverflow => High > IntegerDotProduct.Int16Max || Low < IntegerDotProduct.Int16Min;

    /// <summary>How far past int16 the worst pair can go (0 when it cannot).</summary>
    public int Excess => Math.Max(0, Math.Max(High - IntegerDotProduct.Int16Max, IntegerDotProduct.Int16Min - Low));
}

/// <summary>Verdict for one weight tensor: how many output channels can overflow a 16-bit pair, and by how much at worst.</summary>
public sealed record LayerSaturation(int Channels, int OverflowingChannels, int WorstHigh, int WorstLow, bool ExactPairing, bool PairsInKernel)
{
    public bool CanSaturate => OverflowingChannels > 0;
    public int WorstExcess => new ChannelExtremes(WorstHigh, WorstLow).Excess;
}

/// <summary>
/// Can a target's integer kernel overflow on a quantized weight, for any activations within the calibrated code range?
/// With the kernel's pairing known, each adjacent pair (2j, 2j+1) of the reduction order is bounded exactly
/// (max over a ∈ [lo, hi]² of a_1·w_1 + a_2·w_2); otherwise any two weights of a channel may meet (conservative).
/// </summary>
public static class SaturationAnalysis
{
    /// <param name="weights">Quantized weights as stored (s8), flat in the ONNX layout.</param>
    /// <param name="lo">Smallest activation value in the kernel's domain (after <see cref="IntegerDotProduct.KernelDomain"/>).</param>
    /// <param name="hi">Largest activation value in the kernel's domain.</param>
    public static LayerSaturation Analyze(ReadOnlySpan<sbyte> weights, ReductionLayout layout, AccumulationModel model, bool exactPairing, int lo, int hi)
    {
        bool pairs = model != AccumulationModel.Int32 && !(model == AccumulationModel.X86PairSaturating16 && layout.AccumulatesExactlyOnX86);
        if (!pairs) return new LayerSaturation(layout.Channels, 0, 0, 0, exactPairing, false);
        int overflowing = 0, worstHigh = int.MinValue, worstLow = int.MaxValue;
        for (int c = 0; c < layout.Channels; c++)
        {
            var e = exactPairing ? AdjacentPairs(weights, layout.Channel(c), lo, hi) : AnyTwo(weights, layout.Channel(c), lo, hi);
            if (e.CanOverflow) overflowing++;
            worstHigh = Math.Max(worstHigh, e.High);
            worstLow = Math.Min(worstLow, e.Low);
        }
        return new LayerSaturation(layout.Channels, overflowing, worstHigh, worstLow, exactPairing, true);
    }

    /// <summary>Worst sums of the pairs (2j, 2j+1) of one channel's reduction order (an odd tail pairs with a zero).</summary>
    public static ChannelExtremes AdjacentPairs(ReadOnlySpan<sbyte> weights, ReadOnlySpan<int> order, int lo, int hi)
    {
        int high = 0, low = 0;
        for (int r = 0; r < order.Length; r += 2)
        {
            var (maxA, minA) = IntegerDotProduct.ProductRange(weights[order[r]], lo, hi);
            var (maxB, minB) = r + 1 < order.Length ? IntegerDotProduct.ProductRange(weights[order[r + 1]], lo, hi) : (0, 0);
            high = Math.Max(high, maxA + maxB);
            low = Math.Min(low, minA + minB);
        }
        return new ChannelExtremes(high, low);
    }

    /// <summary>Worst sums of any two weights of a channel: the two largest and the two smallest products.</summary>
    public static ChannelExtremes AnyTwo(ReadOnlySpan<sbyte> weights, ReadOnlySpan<int> order, int lo, int hi)
    {
        int max1 = int.MinValue, max2 = int.MinValue, min1 = int.MaxValue, min2 = int.MaxValue;
        foreach (int i in order)
        {
            var (mx, mn) = IntegerDotProduct.ProductRange(weights[i], lo, hi);
            if (mx > max1) { max2 = max1; max1 = mx; } else if (mx > max2) max2 = mx;
            if (mn < min1) { min2 = min1; min1 = mn; } else if (mn < min2) min2 = mn;
        }
        if (order.Length == 0) return new ChannelExtremes(0, 0);
        if (order.Length == 1) return new ChannelExtremes(Math.Max(max1, 0), Math.Min(min1, 0));
        return new ChannelExtremes(Math.Max(max1 + max2, 0), Math.Min(min1 + min2, 0));
    }
}
