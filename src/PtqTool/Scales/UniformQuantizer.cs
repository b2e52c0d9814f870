using System.Numerics;

namespace PtqTool.Scales;

/// <summary>
/// The uniform quantizer Q(x; s, z) = s·(clip(round(x/s) + z, l, u) − z) with round-half-to-even (as ONNX QuantizeLinear),
/// and the mean squared quantization error of a set of samples.
/// </summary>
public static class UniformQuantizer
{
    public static int Quantize(double x, double s, int z, IntegerRange r)
    {
        double q = Math.Round(x / s, MidpointRounding.ToEven) + z;
        return (int)Math.Clamp(q, r.Min, r.Max);
    }

    public static double FakeQuantize(double x, double s, int z, IntegerRange r) => s * (Quantize(x, s, z, r) - z);

    /// <summary>(1/N) Σ (x − Q(x))², vectorized; float arithmetic per element, double accumulation.</summary>
    public static double Msqe(ReadOnlySpan<float> x, double s, int z, IntegerRange r)
    {
        if (x.Length == 0) return 0;
        return SumSquaredError(x, s, z, r) / x.Length;
    }

    public static double SumSquaredError(ReadOnlySpan<float> x, double s, int z, IntegerRange r)
    {
        float inv = (float)(1.0 / s), sf = (float)s;
        // Clamp round(x/s) into [l−z, u−z] rather than adding z, so no float rounding enters the integer arithmetic.
        float lo = r.Min - z, hi = r.Max - z;
        double total = 0;
        int width = Vector<float>.Count;
        var vInv = new Vector<float>(inv);
        var vS = new Vector<float>(sf);
        var vLo = new Vector<float>(lo);
        var vHi = new Vector<float>(hi);
        int i = 0;
        const int Block = 4096;
        while (i + width <= x.Length)
        {
            var acc = Vector<float>.Zero;
            int end = Math.Min(x.Length - width + 1, i + Block);
            for (; i < end; i += width)
            {
                var v = new Vector<float>(x.Slice(i, width));
                var q = Vector.Min(Vector.Max(Vector.Round(v * vInv), vLo), vHi);
                var e = v - q * vS;
                acc += e * e;
            }
            total += Vector.Sum(acc);
        }
        for (; i < x.Length; i++)
        {
            float q = Math.Clamp(MathF.Round(x[i] * inv, MidpointRounding.ToEven), lo, hi);
            float e = x[i] - q * sf;
            total += e * e;
        }
        return total;
    }

    /// <summary>dMSQE/ds = (1/N) Σ −2·m(x)·(x − s·m(x)) with m(x) = clip(round(x/s)+z) − z, exact away from the finitely many jump points.</summary>
    public static double MsqeDerivative(ReadOnlySpan<float> x, double s, int z, IntegerRange r)
    {
        if (x.Length == 0) return 0;
        double lo = r.Min - z, hi = r.Max - z, total = 0;
        foreach (float v in x)
        {
            double m = Math.Clamp(Math.Round(v / s, MidpointRounding.ToEven), lo, hi);
            total += -2 * m * (v - s * m);
        }
        return total / x.Length;
    }
}
