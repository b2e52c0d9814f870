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
    public void Add(ReadOnlySpan<float> data, int[] shape) => Add(SampleSums(data, shape));

    /// <summary>A batch's sums per sample and channel, [N·C] in sample-major order, and how many values each sums.</summary>
    public sealed record BatchSums(double[] PerSample, int Channels, long ValuesPerChannel);

    /// <summary>The sum of each sample's channel (finite values only) of a batch with shape [N, C, ...].</summary>
    public static BatchSums SampleSums(ReadOnlySpan<float> data, int[] shape)
    {
        int n = shape[0], c = shape[1], inner = data.Length / Math.Max(1, n * c);
        var sums = new double[n * c];
        for (int b = 0; b < n; b++)
            for (int ch = 0; ch < c; ch++)
            {
                var part = data.Slice((b * c + ch) * inner, inner);
                double s = 0;
                float sum = System.Numerics.Tensors.TensorPrimitives.Sum(part);
                if (float.IsFinite(sum)) s = sum;
                else foreach (float v in part) if (float.IsFinite(v)) s += v;
                sums[b * c + ch] = s;
            }
        return new BatchSums(sums, c, inner);
    }

    /// <summary>Adds a batch's <see cref="SampleSums"/>, sample by sample (the order fixes the rounding of the running sums).</summary>
    public void Add(BatchSums batch)
    {
        if (batch.Channels != Sums.Length) throw new PtqException($"channel count changed from {Sums.Length} to {batch.Channels}");
        for (int i = 0; i < batch.PerSample.Length; i++) Sums[i % batch.Channels] += batch.PerSample[i];
        Count += batch.PerSample.Length / Math.Max(1, batch.Channels) * batch.ValuesPerChannel;
    }

    public void Merge(ChannelMeans other)
    {
        if (other.Sums.Length != Sums.Length) throw new PtqException("cannot merge channel means of different widths");
        for (int i = 0; i < Sums.Length; i++) Sums[i] += other.Sums[i];
        Count += other.Count;
    }
}
