namespace PtqTool.Scales.Losses;

/// <summary>
/// TensorRT-style entropy calibration: over a histogram of |x|, pick the threshold whose clipped-and-requantized
/// distribution Q is closest to the clipped reference P in KL divergence. Candidates run from as many bins as there
/// are quantized levels up to the last non-empty bin (ONNX Runtime's default of 128 bins leaves a single candidate).
/// One change to the classic algorithm: zero is exactly representable, so the bin holding zero is never merged; the
/// other L − 1 levels cover the remaining bins. Without this the spike of exact zeros after a Relu is smeared over its
/// group, every wide candidate looks bad, and the search clips far too hard.
/// </summary>
public sealed class EntropyLoss : IScaleLoss
{
    public string Name => "entropy";

    public QuantParams Choose(IDistribution d, QuantSpec spec)
    {
        var abs = d.AbsoluteHistogram();
        int levels = QuantizedBins(d, spec);
        int bins = Threshold(abs.Counts, levels);
        double threshold = Math.Min(bins * abs.Width, Math.Max(Math.Abs(d.Min), Math.Abs(d.Max)));
        return RangeMapping.FromThreshold(threshold, d, spec);
    }

    /// <summary>How many levels cover [0, T]: the positive half for symmetric or signed data, all levels for non-negative data.</summary>
    public static int QuantizedBins(IDistribution d, QuantSpec spec)
    {
        var r = spec.Range;
        if (spec.Symmetric) return r.Max - r.SymmetricZeroPoint + 1;
        return d.Min >= 0 ? r.Levels : (r.Levels + 1) / 2;
    }

    /// <summary>The number of leading bins to keep (threshold = that many bin widths).</summary>
    public static int Threshold(double[] hist, int quantizedBins)
    {
        int n = hist.Length;
        if (n <= quantizedBins || quantizedBins < 2) return n;
        double bestKl = double.PositiveInfinity;
        int best = n;
        var p = new double[n];
        var q = new double[n];
        double tail = 0;
        for (int j = quantizedBins; j < n; j++) tail += hist[j];
        for (int i = quantizedBins; i <= n; i++)
        {
            // Reference P: the first i bins, with everything beyond folded into the last one.
            for (int j = 0; j < i; j++) p[j] = hist[j];
            p[i - 1] += tail;
            if (i < n) tail -= hist[i];
            // Candidate Q: bin 0 (zero) kept as it is; bins 1..i−1 merged into quantizedBins − 1 groups, each group's mass
            // spread over its non-empty bins.
            q[0] = hist[0];
            int groups = quantizedBins - 1, merged = (i - 1) / groups;
            for (int g = 0; g < groups; g++)
            {
                int start = 1 + g * merged, end = g == groups - 1 ? i : start + merged;
                double total = 0;
                int nonzero = 0;
                for (int j = start; j < end; j++) { total += hist[j]; if (hist[j] != 0) nonzero++; }
                for (int j = start; j < end; j++) q[j] = hist[j] != 0 ? total / nonzero : 0;
            }
            double kl = KlDivergence(p.AsSpan(0, i), q.AsSpan(0, i));
            if (kl < bestKl) { bestKl = kl; best = i; }
        }
        return best;
    }

    /// <summary>KL(P‖Q) of two unnormalized histograms, with zero bins smoothed by ε = 1e-4 taken from the non-zero ones.</summary>
    public static double KlDivergence(ReadOnlySpan<double> p, ReadOnlySpan<double> q)
    {
        var ps = Smooth(p);
        var qs = Smooth(q);
        if (ps is null || qs is null) return double.PositiveInfinity;
        double sp = ps.Sum(), sq = qs.Sum(), kl = 0;
        for (int j = 0; j < ps.Length; j++)
        {
            double a = ps[j] / sp, b = qs[j] / sq;
            if (a > 0) kl += a * Math.Log(a / b);
        }
        return kl;
    }

    private static double[]? Smooth(ReadOnlySpan<double> h)
    {
        const double eps = 1e-4;
        double total = 0;
        int zeros = 0;
        foreach (double v in h) { total += v; if (v == 0) zeros++; }
        int nonzero = h.Length - zeros;
        if (nonzero == 0) return null;
        var result = new double[h.Length];
        // Normalize first so ε is relative to a probability, then move ε mass into each empty bin.
        double eps1 = eps * zeros / nonzero;
        for (int j = 0; j < h.Length; j++) result[j] = h[j] == 0 ? eps : h[j] / total - eps1;
        return result.Any(v => v <= 0) ? h.ToArray().Select(v => v + eps).ToArray() : result;
    }
}
