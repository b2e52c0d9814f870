namespace PtqTool.Scales;

/// <summary>
/// The smooth quantization error QSin(x; s) for the segment [l,u] with zero point z. With A = s(l−z), B = s(u−z):
///   A ≤ x ≤ B:  s²·sin²(πx/s)/π²      (zero on every grid point s·m, at most s²/π² halfway between)
///   x &gt; B:      (x − B)²
///   x &lt; A:      (x − A)²
/// A and B are grid points, where the sine part has value 0, slope 0, curvature 2 and third derivative 0, exactly as the
/// square does: the pieces join with no offset or scaling, and QSin is C³ in x (see docs/quantization-math.md).
/// Pointwise (4/π²)·MSQE ≤ QSin ≤ MSQE, with equality outside [A,B].
/// </summary>
public static class QSinFunction
{
    public static double Value(double x, double s, int z, IntegerRange r)
    {
        double a = s * (r.Min - z), b = s * (r.Max - z);
        if (x > b) return (x - b) * (x - b);
        if (x < a) return (x - a) * (x - a);
        double sn = Math.Sin(Math.PI * x / s);
        return s * s * sn * sn / (Math.PI * Math.PI);
    }

    /// <summary>∂QSin/∂x.</summary>
    public static double DerivativeX(double x, double s, int z, IntegerRange r)
    {
        double a = s * (r.Min - z), b = s * (r.Max - z);
        if (x > b) return 2 * (x - b);
        if (x < a) return 2 * (x - a);
        return s / Math.PI * Math.Sin(2 * Math.PI * x / s);
    }

    /// <summary>∂QSin/∂s.</summary>
    public static double DerivativeS(double x, double s, int z, IntegerRange r)
    {
        int mu = r.Max - z, ml = r.Min - z;
        double a = s * ml, b = s * mu;
        if (x > b) return -2.0 * mu * (x - b);
        if (x < a) return -2.0 * ml * (x - a);
        double sn = Math.Sin(Math.PI * x / s);
        return 2 * s / (Math.PI * Math.PI) * sn * sn - x / Math.PI * Math.Sin(2 * Math.PI * x / s);
    }
}
