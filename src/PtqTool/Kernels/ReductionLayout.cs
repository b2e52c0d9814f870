namespace PtqTool.Kernels;

/// <summary>
/// Where each weight of an output channel sits in the kernel's reduction order: <see cref="Index"/>[c·Length + r] is the
/// flat index (into the ONNX weight tensor) of the r-th reduction element of channel c. Adjacent elements (2j, 2j+1)
/// are the pairs that x86 vpmaddubsw kernels add in int16.
/// </summary>
public sealed class ReductionLayout
{
    public int Channels { get; }
    public int Length { get; }
    public int[] Index { get; }
    /// <summary>Depthwise convolutions: x86 kernels widen to 16/32 bits before multiplying, so nothing pairs (MLAS qdwconv, ConvSym depthwise).</summary>
    public bool AccumulatesExactlyOnX86 { get; }

    private ReductionLayout(int channels, int length, int[] index, bool exactOnX86)
    {
        Channels = channels;
        Length = length;
        Index = index;
        AccumulatesExactlyOnX86 = exactOnX86;
    }

    public ReadOnlySpan<int> Channel(int c) => Index.AsSpan(c * Length, Length);

    /// <summary>
    /// Conv weight [M, C/group, k1, …]: ONNX Runtime reorders each group's filter to [kernel position][input channel]
    /// (QLinearConv's ReorderFilter, NHWC im2col, ConvSym packs of 4 input channels), so r = k·(C/group) + ic.
    /// </summary>
    public static ReductionLayout Conv(IReadOnlyList<int> shape, int group)
    {
        int m = shape[0], cg = shape[1], k = 1;
        for (int i = 2; i < shape.Count; i++) k *= shape[i];
        int length = cg * k;
        var index = new int[m * length];
        for (int oc = 0; oc < m; oc++)
            for (int ki = 0; ki < k; ki++)
                for (int ic = 0; ic < cg; ic++)
                    index[oc * length + ki * cg + ic] = oc * length + ic * k + ki;
        bool depthwise = cg == 1 && group > 1 && m / group == 1;
        return new ReductionLayout(m, length, index, depthwise);
    }

    /// <summary>A [K, N] weight (MatMul's B, Gemm's B without transB): channel n reduces over column n.</summary>
    public static ReductionLayout KByN(int k, int n)
    {
        var index = new int[n * k];
        for (int c = 0; c < n; c++)
            for (int r = 0; r < k; r++) index[c * k + r] = r * n + c;
        return new ReductionLayout(n, k, index, false);
    }

    /// <summary>A [N, K] weight (Gemm's B with transB = 1): channel n reduces over row n.</summary>
    public static ReductionLayout NByK(int n, int k)
    {
        var index = new int[n * k];
        for (int i = 0; i < index.Length; i++) index[i] = i;
        return new ReductionLayout(n, k, index, false);
    }
}
