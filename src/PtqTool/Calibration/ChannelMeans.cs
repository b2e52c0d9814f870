namespace PtqTool.Calibration;

/// <summary>Running per-channel sums of a tensor (channel axis 1: NCHW activations, or [N, K] matrix inputs), for bias correction.</summary>
public sealed class ChannelMeans
{
    public double[] Sums { get; }
    /// <summary>Values added per channel.</summary>
    public long Count { get; private set; }

    public ChannelMeans(int channels) => Sums = new double[channels];

    public ChannelMeans(double[] sums, long count)
    {
        Sums = sums;
        Count = count;
    }

    public double[] Means => Sums.Select(s => Count > 0 ? s / Count : 0).ToArray();

    /// <summary>Adds a batch with shape [N, C, ...].</summary>
    public void Add(ReadOnlySpan<float> data, int[] shape)
    {
        int n = shape[0], c = shape[1], inner = data.Length / Math.Max(1, n * c);
        if (c != Sums.Length) throw new PtqException($"channel count changed from {Sums.Length} to {c}");
        for (int b = 0; b < n; b++)
            for (int ch = 0; ch < c; ch++)
            {
                var part = data.Slice((b * c + ch) * inner, inner);
                double s = 0;
                float sum = System.Numerics.Tensors.TensorPrimitives.Sum(part);
                if (float.IsFinite(sum)) s = sum;
                else foreach (float v in part) if (float.IsFinite(v)) s += v;
                Sums[ch] += s;
            }
        Count += (long)n * inner;
    }

    public void Merge(ChannelMeans other)
    {
        if (other.Sums.Length != Sums.Length) throw new PtqException("cannot merge channel means of different widths");
        for (int i = 0; i < Sums.Length; i++) Sums[i] += other.Sums[i];
        Count += other.Count;
    }
}
