using PtqTool.Onnx;

namespace PtqTool.Tests.Distill;

/// <summary>Reference per-channel batch statistics in double (two passes), for checking ZeroQ independently of its graph.</summary>
public static class BatchStatistics
{
    /// <summary>Mean and population standard deviation of each channel (axis 1) over the batch and all other axes.</summary>
    public static (double[] Mean, double[] Sd) PerChannel(FloatTensor a)
    {
        int channels = a.Shape[1], inner = a.Data.Length / (a.Shape[0] * channels);
        var mean = new double[channels];
        var sd = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            var values = Enumerable.Range(0, a.Shape[0]).SelectMany(n => a.Data.AsSpan((n * channels + c) * inner, inner).ToArray()).ToArray();
            mean[c] = values.Average(v => (double)v);
            sd[c] = Math.Sqrt(values.Average(v => (v - mean[c]) * (v - mean[c])));
        }
        return (mean, sd);
    }
}
