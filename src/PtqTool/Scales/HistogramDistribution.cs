namespace PtqTool.Scales;

/// <summary>
/// A distribution given by a <see cref="Histogram"/>: uniform density inside each bin, the outermost occupied bins
/// trimmed to the exact min and max. MSQE and QSin are exact integrals over the bins (closed forms, not bin centres).
/// </summary>
public sealed class HistogramDistribution : IDistribution
{
    private readonly double[] _lo, _hi, _weight;
    private readonly Histogram _histogram;

    public HistogramDistribution(Histogram histogram)
    {
        _histogram = histogram;
        var lo = new List<double>();
        var hi = new List<double>();
        var weight = new List<double>();
        var counts = histogram.Counts;
        double width = histogram.BinWidth, n = Math.Max(1, histogram.Count);
        for (int i = 0; i < counts.Length; i++)
        {
            if (counts[i] == 0) continue;
            double a = Math.Max(histogram.LeftEdge(i), histogram.Min), b = Math.Min(histogram.LeftEdge(i) + width, histogram.Max);
            if (b < a) b = a;
            lo.Add(a);
            hi.Add(b);
            weight.Add(counts[i] / n);
        }
        _lo = lo.ToArray();
        _hi = hi.ToArray();
        _weight = weight.ToArray();
    }

    public Histogram Histogram => _histogram;

    /// <summary>Bins merged 8:1 when there are more than 512 occupied bins.</summary>
    public IDistribution Coarse() => _lo.Length > 512 ? new HistogramDistribution(_histogram.Coarsened(8)) : this;
    public long Count => _histogram.Count;
    public double Min => _histogram.Count > 0 ? _histogram.Min : 0;
    public double Max => _histogram.Count > 0 ? _histogram.Max : 0;

    public double Msqe(double s, int z, IntegerRange r) =>
        Integrate(s, z, r, IntervalIntegrals.SquaredError, (x, ss, zz, rr) => Square(x - UniformQuantizer.FakeQuantize(x, ss, zz, rr)));

    public double MsqeDerivative(double s, int z, IntegerRange r) =>
        Integrate(s, z, r, IntervalIntegrals.SquaredErrorDerivative, PointMsqeDerivative);

    public double QSin(double s, int z, IntegerRange r) => Integrate(s, z, r, IntervalIntegrals.QSin, QSinFunction.Value);

    public double QSinDerivative(double s, int z, IntegerRange r) =>
        Integrate(s, z, r, IntervalIntegrals.QSinDerivative, QSinFunction.DerivativeS);

    private double Integrate(double s, int z, IntegerRange r,
        Func<double, double, double, int, IntegerRange, double> interval,
        Func<double, double, int, IntegerRange, double> point)
    {
        double total = 0;
        for (int i = 0; i < _lo.Length; i++)
        {
            double a = _lo[i], b = _hi[i];
            // A bin squeezed to a point (all its values equal) is a point mass.
            total += b - a > 1e-12 * Math.Max(1, Math.Abs(a))
                ? _weight[i] * interval(a, b, s, z, r) / (b - a)
                : _weight[i] * point(a, s, z, r);
        }
        return total;
    }

    private static double PointMsqeDerivative(double x, double s, int z, IntegerRange r)
    {
        double m = Math.Clamp(Math.Round(x / s, MidpointRounding.ToEven), r.Min - z, r.Max - z);
        return -2 * m * (x - s * m);
    }

    private static double Square(double v) => v * v;

    public double Quantile(double p)
    {
        if (_weight.Length == 0) return 0;
        double target = Math.Clamp(p, 0, 1), cumulative = 0;
        for (int i = 0; i < _weight.Length; i++)
        {
            if (cumulative + _weight[i] >= target)
            {
                double frac = _weight[i] > 0 ? (target - cumulative) / _weight[i] : 0;
                return _lo[i] + frac * (_hi[i] - _lo[i]);
            }
            cumulative += _weight[i];
        }
        return _hi[^1];
    }

    public double AbsQuantile(double p)
    {
        var abs = AbsoluteHistogram();
        double total = abs.Counts.Sum(), target = Math.Clamp(p, 0, 1) * total, cumulative = 0;
        for (int i = 0; i < abs.Counts.Length; i++)
        {
            if (cumulative + abs.Counts[i] >= target && abs.Counts[i] > 0)
            {
                double frac = (target - cumulative) / abs.Counts[i];
                // The last bin is trimmed to max |x|, as the signed bins are trimmed to [min, max].
                double lower = i * abs.Width, upper = Math.Min((i + 1) * abs.Width, Math.Max(Math.Abs(Min), Math.Abs(Max)));
                return lower + frac * Math.Max(0, upper - lower);
            }
            cumulative += abs.Counts[i];
        }
        return abs.Counts.Length * abs.Width;
    }

    /// <summary>Folds the symmetric histogram at 0: bin k of |x| is bins n+k and n−1−k. Exact, since 0 is a bin edge.</summary>
    public AbsHistogram AbsoluteHistogram()
    {
        var counts = _histogram.Counts;
        int n = _histogram.BinsPerSide, last = 0;
        var folded = new double[n];
        for (int k = 0; k < n; k++)
        {
            folded[k] = counts[n + k] + counts[n - 1 - k];
            if (folded[k] > 0) last = k;
        }
        return new AbsHistogram(folded[..(last + 1)], _histogram.BinWidth);
    }
}
