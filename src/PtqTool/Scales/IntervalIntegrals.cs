namespace PtqTool.Scales;

/// <summary>
/// Closed-form integrals over an interval [p, q] of the pointwise squared quantization error (x − Q(x))², of QSin,
/// and of their derivatives in s. A histogram bin with uniform density contributes count/(q−p) times these.
/// Grid points are s·m for integers m in [l−z, u−z]; A = s(l−z), B = s(u−z) are the segment's ends.
/// </summary>
public static class IntervalIntegrals
{
    /// <summary>∫_p^q (x − Q(x))² dx.</summary>
    public static double SquaredError(double p, double q, double s, int z, IntegerRange r)
    {
        double a = s * (r.Min - z), b = s * (r.Max - z), h = s / 2, total = 0;
        // x < A + s/2 rounds to the lowest level A; x ≥ B − s/2 to the highest B; in between, to the nearest grid point.
        total += Cube(p, Math.Min(q, a + h), a);
        total += Cube(Math.Max(p, b - h), q, b);
        double ip = Math.Max(p, a + h), iq = Math.Min(q, b - h);
        if (iq > ip) total += Sawtooth(iq, s) - Sawtooth(ip, s);
        return total;
    }

    /// <summary>∂/∂s ∫_p^q (x − Q(x))² dx. The integrand is continuous in x, so moving cell edges add nothing.</summary>
    public static double SquaredErrorDerivative(double p, double q, double s, int z, IntegerRange r)
    {
        int ml = r.Min - z, mu = r.Max - z;
        double a = s * ml, b = s * mu, h = s / 2, total = 0;
        total += LinearClip(p, Math.Min(q, a + h), a, ml);
        total += LinearClip(Math.Max(p, b - h), q, b, mu);
        double ip = Math.Max(p, a + h), iq = Math.Min(q, b - h);
        if (iq > ip) total += SawtoothDerivative(iq, s) - SawtoothDerivative(ip, s);
        return total;
    }

    /// <summary>∫_p^q QSin(x; s) dx.</summary>
    public static double QSin(double p, double q, double s, int z, IntegerRange r)
    {
        double a = s * (r.Min - z), b = s * (r.Max - z), total = 0;
        total += Cube(p, Math.Min(q, a), a);
        total += Cube(Math.Max(p, b), q, b);
        double ip = Math.Max(p, a), iq = Math.Min(q, b);
        if (iq > ip) total += SineSquared(iq, s) - SineSquared(ip, s);
        return total;
    }

    /// <summary>∂/∂s ∫_p^q QSin(x; s) dx.</summary>
    public static double QSinDerivative(double p, double q, double s, int z, IntegerRange r)
    {
        int ml = r.Min - z, mu = r.Max - z;
        double a = s * ml, b = s * mu, total = 0;
        total += LinearClip(p, Math.Min(q, a), a, ml);
        total += LinearClip(Math.Max(p, b), q, b, mu);
        double ip = Math.Max(p, a), iq = Math.Min(q, b);
        if (iq > ip) total += SineSquaredDerivative(iq, s) - SineSquaredDerivative(ip, s);
        return total;
    }

    /// <summary>∫_p^q (x − c)² dx, zero when q ≤ p.</summary>
    private static double Cube(double p, double q, double c)
    {
        if (q <= p) return 0;
        double u = q - c, v = p - c;
        return (u * u * u - v * v * v) / 3;
    }

    /// <summary>∫_p^q −2m(x − c) dx with c = s·m: the s-derivative of the clipped square.</summary>
    private static double LinearClip(double p, double q, double c, int m)
    {
        if (q <= p) return 0;
        double u = q - c, v = p - c;
        return -m * (u * u - v * v);
    }

    /// <summary>
    /// G(x) = ∫_0^x (t − s·round(t/s))² dt. With n = floor(x/s + 1/2) and r = x − s·n ∈ [−s/2, s/2):
    /// each whole cell adds s³/12, so G = n·s³/12 + r³/3.
    /// </summary>
    private static double Sawtooth(double x, double s)
    {
        double n = Math.Floor(x / s + 0.5), rem = x - s * n;
        return n * s * s * s / 12 + rem * rem * rem / 3;
    }

    /// <summary>H(x) = ∫_0^x −2n(t)(t − s·n(t)) dt: every whole cell integrates to 0, so H = −n·(r² − s²/4).</summary>
    private static double SawtoothDerivative(double x, double s)
    {
        double n = Math.Floor(x / s + 0.5), rem = x - s * n;
        return -n * (rem * rem - s * s / 4);
    }

    /// <summary>∫ s²sin²(πx/s)/π² dx = (s²/π²)(x/2 − s·sin(2πx/s)/(4π)).</summary>
    private static double SineSquared(double x, double s) =>
        s * s / (Math.PI * Math.PI) * (x / 2 - s * Math.Sin(2 * Math.PI * x / s) / (4 * Math.PI));

    /// <summary>
    /// Antiderivative in x of ∂/∂s[s²sin²(πx/s)/π²] = (2s/π²)sin²(πx/s) − (x/π)sin(2πx/s); with k = 2π/s,
    /// ∫x·sin(kx)dx = −x·cos(kx)/k + sin(kx)/k².
    /// </summary>
    private static double SineSquaredDerivative(double x, double s)
    {
        double k = 2 * Math.PI / s, sin = Math.Sin(k * x), cos = Math.Cos(k * x);
        double first = 2 * s / (Math.PI * Math.PI) * (x / 2 - sin / (2 * k));
        double second = -(1 / Math.PI) * (-x * cos / k + sin / (k * k));
        return first + second;
    }
}
