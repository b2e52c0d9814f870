using System.Numerics.Tensors;

namespace PtqTool.Scales;

/// <summary>A distribution given by its samples (a weight tensor or one channel of it). Non-finite values are dropped.</summary>
public sealed class SampleDistribution : IDistribution
{
    public const int AbsHistogramBins = 2048;
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

    public double QSin(double s, int z, IntegerRange r)
    {
        if (_values.Length == 0) return 0;
        double a = s * (r.Min - z), b = s * (r.Max - z), inside = 0, outside = 0;
        var sin = new float[_values.Length];
        TensorPrimitives.Multiply(_values, (float)(1.0 / s), sin);
        TensorPrimitives.SinPi(sin, sin);
        for (int i = 0; i < _values.Length; i++)
        {
            double x = _values[i];
            if (x > b) outside += (x - b) * (x - b);
            else if (x < a) outside += (x - a) * (x - a);
            else inside += (double)sin[i] * sin[i];
        }
        return (inside * s * s / (Math.PI * Math.PI) + outside) / _values.Length;
    }

    public double QSinDerivative(double s, int z, IntegerRange r)
    {
        if (_values.Length == 0) return 0;
        double total = 0;
        foreach (float v in _values) total += QSinFunction.DerivativeS(v, s, z, r);
        return total / _values.Length;
    }

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
        var counts = new double[AbsHistogramBins];
        if (maxAbs == 0) return new AbsHistogram([_values.Length], 1);
        double width = maxAbs / AbsHistogramBins;
        foreach (float v in _values)
            counts[Math.Min(AbsHistogramBins - 1, (int)(Math.Abs(v) / width))]++;
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
