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
            Array.Copy(hist, p, i);
            p[i - 1] += tail;
            if (i < n) tail -= hist[i];
            // Candidate Q: bin 0 (zero) kept as it is; bins 1..i−1 merged into quantizedBins − 1 groups, each group's
            // mass spread over its non-empty bins.
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

    /// <summary>
    /// KL(P‖Q) of two unnormalized histograms. Zero bins are smoothed: each gets ε = 1e-4 of probability, taken evenly
    /// from the non-zero bins (or, where a non-zero bin is too small to give its share, ε is added to every bin).
    /// Allocation-free: it runs once per candidate threshold.
    /// </summary>
    public static double KlDivergence(ReadOnlySpan<double> p, ReadOnlySpan<double> q)
    {
        var sp = SmoothingOf(p);
        var sq = SmoothingOf(q);
        if (sp.Nonzero == 0 || sq.Nonzero == 0) return double.PositiveInfinity;
        double kl = 0;
        for (int j = 0; j < p.Length; j++)
        {
            double a = sp.Apply(p[j]), b = sq.Apply(q[j]);
            if (a > 0) kl += a * Math.Log(a / b);
        }
        return kl;
    }

    private const double Epsilon = 1e-4;

    private readonly record struct Smoothing(double Total, double Eps1, bool Additive, double AdditiveSum, int Nonzero)
    {
        /// <summary>The smoothed probability of a bin holding <paramref name="v"/>.</summary>
        public double Apply(double v) => Additive ? (v + Epsilon) / AdditiveSum : v == 0 ? Epsilon : v / Total - Eps1;
    }

    private static Smoothing SmoothingOf(ReadOnlySpan<double> h)
    {
        double total = 0, minNonzero = double.PositiveInfinity;
        int zeros = 0;
        foreach (double v in h)
        {
            total += v;
            if (v == 0) zeros++;
            else if (v < minNonzero) minNonzero = v;
        }
        int nonzero = h.Length - zeros;
        if (nonzero == 0) return new Smoothing(0, 0, false, 0, 0);
        double eps1 = Epsilon * zeros / nonzero;
        bool additive = minNonzero / total - eps1 <= 0;
        return new Smoothing(total, eps1, additive, total + Epsilon * h.Length, nonzero);
    }
}
