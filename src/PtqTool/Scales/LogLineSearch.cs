namespace PtqTool.Scales;

/// <summary>
/// Minimizes a loss over one positive multiplier m of a scale, on u = ln m (scale errors are relative): the loss at
/// m = 1 is known; two points at m = 1/r and r are measured, a parabola through the three is minimized (or, where it is
/// not convex, the better side is walked out), and the best measured point is returned. The result is never worse than
/// m = 1: the search can only keep or lower the loss it is given.
/// </summary>
public static class LogLineSearch
{
    /// <param name="Multiplier">The best multiplier measured (1 when nothing beat the start).</param>
    /// <param name="Evaluations">Calls of the loss made.</param>
    public sealed record Outcome(double Multiplier, double Loss, int Evaluations);

    /// <param name="loss">The loss at a multiplier.</param>
    /// <param name="atOne">The loss at m = 1.</param>
    /// <param name="ratio">The first step r (> 1): m = 1/r and r are measured.</param>
    /// <param name="lo">Smallest multiplier allowed (≤ 1).</param>
    /// <param name="hi">Largest multiplier allowed (≥ 1; 1 where the scale is at a cap).</param>
    /// <param name="walks">How many more doublings of the step the walk out of a non-convex bracket may take.</param>
    public static Outcome Minimize(Func<double, double> loss, double atOne, double ratio, double lo, double hi, int walks = 2)
    {
        if (!(ratio > 1)) throw new ArgumentOutOfRangeException(nameof(ratio), "the step ratio must exceed 1");
        if (!(lo > 0 && lo <= 1 && hi >= 1)) throw new ArgumentOutOfRangeException(nameof(lo), "the bounds must hold m = 1");
        double h = Math.Log(ratio), uLo = Math.Log(lo), uHi = Math.Log(hi);
        var measured = new List<(double U, double L)> { (0, atOne) };
        double Measure(double u)
        {
            double l = loss(Math.Exp(u));
            if (double.IsNaN(l)) l = double.PositiveInfinity;
            measured.Add((u, l));
            return l;
        }
        double left = Math.Max(-h, uLo), right = Math.Min(h, uHi);
        double? fl = left < -1e-12 ? Measure(left) : null;
        double? fr = right > 1e-12 ? Measure(right) : null;
        if (fl is double a && fr is double b && Vertex(left, a, 0, atOne, right, b) is double v)
        {
            // Convex through the three: its vertex, kept within one more step of the bracket and the bounds.
            v = Math.Clamp(v, Math.Max(uLo, left - h), Math.Min(uHi, right + h));
            if (measured.All(p => Math.Abs(p.U - v) > 1e-6)) Measure(v);
        }
        else
        {
            // Not convex (or one side only): walk out from the better side while it keeps improving.
            var (u, best, dir) = (fl, fr) switch
            {
                (double a2, double b2) => a2 < b2 ? (left, a2, -1) : (right, b2, 1),
                (double a2, null) => (left, a2, -1),
                (null, double b2) => (right, b2, 1),
                _ => (0.0, atOne, 0),
            };
            for (int k = 0; k < walks && dir != 0 && best < atOne; k++)
            {
                double next = Math.Clamp(u + dir * h * (1 << k), uLo, uHi);
                if (Math.Abs(next - u) < 1e-12) break;
                double l = Measure(next);
                if (l >= best) break;
                (u, best) = (next, l);
            }
        }
        var min = measured.MinBy(p => p.L);
        return new Outcome(min.L < atOne ? Math.Exp(min.U) : 1, Math.Min(min.L, atOne), measured.Count - 1);
    }

    /// <summary>The minimum of the parabola through three points, or null when they are not strictly convex.</summary>
    public static double? Vertex(double x0, double y0, double x1, double y1, double x2, double y2)
    {
        double d01 = (y1 - y0) / (x1 - x0), d12 = (y2 - y1) / (x2 - x1);
        double curvature = (d12 - d01) / (x2 - x0);
        if (!(curvature > 0) || double.IsInfinity(curvature)) return null;
        // y = y0 + d01 (x − x0) + c (x − x0)(x − x1): zero derivative at x = (x0 + x1)/2 − d01 / (2c).
        return (x0 + x1) / 2 - d01 / (2 * curvature);
    }
}
