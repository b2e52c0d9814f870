namespace PtqTool.Kernels;

/// <summary>
/// Reference integer dot products of the targets' kernels, on values in the kernel's own domain (x86: u8 activations;
/// ARM: s8 activations) with s8 weights, both in the kernel's reduction order. Zero points are applied outside, as the
/// kernels do (row/column sums), so these sums are what can overflow.
/// </summary>
public static class IntegerDotProduct
{
    public const int Int16Max = short.MaxValue, Int16Min = short.MinValue;

    /// <summary>Every product added in int32 (VNNI, dot-product instructions): exact.</summary>
    public static int Exact(ReadOnlySpan<int> a, ReadOnlySpan<sbyte> w)
    {
        int sum = 0;
        for (int i = 0; i < a.Length; i++) sum += a[i] * w[i];
        return sum;
    }

    /// <summary>
    /// x86 vpmaddubsw + vpmaddwd: a[2j]·w[2j] + a[2j+1]·w[2j+1] saturated to int16, then the int16 pairs summed in int32.
    /// An odd tail is paired with a zero (MLAS pads the packed reduction with zeros).
    /// </summary>
    public static int X86PairSaturating(ReadOnlySpan<int> a, ReadOnlySpan<sbyte> w)
    {
        int sum = 0;
        for (int i = 0; i < a.Length; i += 2)
        {
            int pair = a[i] * w[i] + (i + 1 < a.Length ? a[i + 1] * w[i + 1] : 0);
            sum += Math.Clamp(pair, Int16Min, Int16Max);
        }
        return sum;
    }

    /// <summary>ARM smull/smlal2: a pair of s8·s8 products added in int16 without saturation (wraps), then widened.</summary>
    public static int ArmPairWrapping(ReadOnlySpan<int> a, ReadOnlySpan<sbyte> w)
    {
        int sum = 0;
        for (int i = 0; i < a.Length; i += 2)
        {
            int pair = a[i] * w[i] + (i + 1 < a.Length ? a[i + 1] * w[i + 1] : 0);
            sum += (short)pair;
        }
        return sum;
    }

    /// <summary>The model's dot product on stored activation codes (u8 or s8), shifted into the kernel's domain first.</summary>
    public static int Compute(AccumulationModel model, ReadOnlySpan<int> storedCodes, bool signedActivations, ReadOnlySpan<sbyte> w)
    {
        int shift = KernelDomain(model, signedActivations, 0, 0).Lo;
        var a = new int[storedCodes.Length];
        for (int i = 0; i < a.Length; i++) a[i] = storedCodes[i] + shift;
        return model switch
        {
            AccumulationModel.Int32 => Exact(a, w),
            AccumulationModel.X86PairSaturating16 => X86PairSaturating(a, w),
            AccumulationModel.ArmPairSigned16 => ArmPairWrapping(a, w),
            _ => throw new ArgumentOutOfRangeException(nameof(model)),
        };
    }

    /// <summary>
    /// Maps a range of stored activation codes into the values the kernel multiplies: x86 shifts s8 activations to u8
    /// (+128); ARM shifts u8 activations to s8 (−128); VNNI takes them as they are.
    /// </summary>
    public static (int Lo, int Hi) KernelDomain(AccumulationModel model, bool signedActivations, int lo, int hi) => model switch
    {
        AccumulationModel.X86PairSaturating16 when signedActivations => (lo + 128, hi + 128),
        AccumulationModel.ArmPairSigned16 when !signedActivations => (lo - 128, hi - 128),
        _ => (lo, hi),
    };

    /// <summary>The largest and smallest value a·w can take for a in [lo, hi].</summary>
    public static (int Max, int Min) ProductRange(int w, int lo, int hi)
    {
        int x = lo * w, y = hi * w;
        return (Math.Max(x, y), Math.Min(x, y));
    }
}
