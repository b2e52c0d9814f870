using System.Numerics.Tensors;

namespace PtqTool.Scales;

/// <summary>A distribution given by its samples (a weight tensor or one channel of it). Non-finite values are dropped.</summary>
public sealed class SampleDistribution : IDistribution
{
    /// <summary>Bins of the |x| histogram for entropy: 2048, fewer for small sets (N/8, at least 256), so a 9-value channel is not spread over 2048 bins.</summary>
    public const int AbsHistogramBins = 2048;

    [ThreadStatic] private static float[]? _sinBuffer, _cosBuffer;
    private readonly float[] _values;
    private float[]? _sorted;
    private float[]? _sortedAbs;

    public SampleDistribution(ReadOnlySpan<float> values)
    {
        var kept = new List<float>(values.Length);
        foreach (float v in values) if (float.IsFinite(v)) kept.Add(v);
        _values = kept.ToArray();
        Min = _values.Length > 0 ? TensorPrimitives.Min(_values) : 0;
        Max = _values.Length > 0 ? TensorPrimitives.Max(_values) : 0;
    }

    public ReadOnlySpan<float> Values => _values;
    public long Count => _values.Length;
    public double Min { get; }
    public double Max { get; }

    public double Msqe(double s, int z, IntegerRange r) => UniformQuantizer.Msqe(_values, s, z, r);

    public double MsqeDerivative(double s, int z, IntegerRange r) => UniformQuantizer.MsqeDerivative(_values, s, z, r);

    public double QSin(double s, int z, IntegerRange r) => QSinWithDerivative(s, z, r, derivative: false).Value;

    public double QSinDerivative(double s, int z, IntegerRange r) => QSinWithDerivative(s, z, r, derivative: true).Derivative;

    /// <summary>
    /// E[QSin] and ∂/∂s in one vectorized pass: sin(πx/s) and cos(πx/s) come from TensorPrimitives.SinCosPi into reused
    /// per-thread buffers; inside the segment ∂/∂s = (2s/π²)sin² − (2x/π)·sin·cos.
    /// </summary>
    private (double Value, double Derivative) QSinWithDerivative(double s, int z, IntegerRange r, bool derivative)
    {
        int n = _values.Length;
        if (n == 0) return (0, 0);
        if (_sinBuffer is null || _sinBuffer.Length < n) { _sinBuffer = new float[n]; _cosBuffer = new float[n]; }
        var sin = _sinBuffer.AsSpan(0, n);
        var cos = _cosBuffer!.AsSpan(0, n);
        TensorPrimitives.Multiply(_values, (float)(1.0 / s), sin);
        if (derivative) TensorPrimitives.SinCosPi(sin, sin, cos);
        else TensorPrimitives.SinPi(sin, sin);
        int ml = r.Min - z, mu = r.Max - z;
        double a = s * ml, b = s * mu, inside = 0, insideCross = 0, outside = 0, outsideDerivative = 0;
        for (int i = 0; i < n; i++)
        {
            double x = _values[i];
            if (x > b) { outside += (x - b) * (x - b); outsideDerivative += -2.0 * mu * (x - b); }
            else if (x < a) { outside += (x - a) * (x - a); outsideDerivative += -2.0 * ml * (x - a); }
            else
            {
                double si = sin[i];
                inside += si * si;
                if (derivative) insideCross += x * si * cos[i];
            }
        }
        double value = (inside * s * s / (Math.PI * Math.PI) + outside) / n;
        double d = derivative ? (2 * s / (Math.PI * Math.PI) * inside - 2 / Math.PI * insideCross + outsideDerivative) / n : 0;
        return (value, d);
    }

    public IDistribution Coarse() => this;

    public double Quantile(double p)
    {
        _sorted ??= Sorted(_values);
        return QuantileOf(_sorted, p);
    }

    public double AbsQuantile(double p)
    {
        if (_sortedAbs is null)
        {
            var abs = new float[_values.Length];
            TensorPrimitives.Abs(_values, abs);
            _sortedAbs = Sorted(abs);
        }
        return QuantileOf(_sortedAbs, p);
    }

    public AbsHistogram AbsoluteHistogram()
    {
        double maxAbs = Math.Max(Math.Abs(Min), Math.Abs(Max));
        int bins = Math.Clamp(_values.Length / 8, 256, AbsHistogramBins);
        var counts = new double[bins];
        if (maxAbs == 0) return new AbsHistogram([_values.Length], 1);
        double width = maxAbs / bins;
        foreach (float v in _values)
            counts[Math.Min(bins - 1, (int)(Math.Abs(v) / width))]++;
        return new AbsHistogram(counts, width);
    }

    /// <summary>Linear interpolation between order statistics (NumPy's default "linear" method).</summary>
    public static double QuantileOf(float[] sorted, double p)
    {
        if (sorted.Length == 0) return 0;
        double pos = Math.Clamp(p, 0, 1) * (sorted.Length - 1);
        int i = (int)Math.Floor(pos);
        if (i >= sorted.Length - 1) return sorted[^1];
        double frac = pos - i;
        return sorted[i] + frac * (sorted[i + 1] - sorted[i]);
    }

    private static float[] Sorted(float[] values)
    {
        var copy = (float[])values.Clone();
        Array.Sort(copy);
        return copy;
    }
}
