namespace PtqTool.Scales;

/// <summary>One-dimensional minimizers over the scale s.</summary>
public static class ScaleSearch
{
    /// <summary>
    /// Global minimum of a piecewise-smooth function with many local minima on [lo, hi]: a log-spaced coarse grid finds
    /// the basins, a dense linear scan of ±<paramref name="window"/> around the best few coarse minima finds the narrow
    /// dips inside them, and repeated zooming around the best dips refines the answer.
    /// </summary>
    public static double GlobalMinimum(Func<double, double> f, double lo, double hi,
        int coarse = 200, int keep = 3, double window = 0.08, int dense = 400, int zoomKeep = 4, int zoomPoints = 24, int zoomLevels = 3)
    {
        var (xs, fs) = Grid(f, Enumerable.Range(0, coarse).Select(i => lo * Math.Pow(hi / lo, i / (coarse - 1.0))));
        var candidates = new List<(double X, double F)>();
        foreach (int i in LocalMinima(fs).OrderBy(i => fs[i]).Take(keep))
        {
            if (dense <= 0) { candidates.Add((xs[i], fs[i])); continue; }
            double a = Math.Max(lo, xs[i] * (1 - window)), b = Math.Min(hi, xs[i] * (1 + window));
            var (dx, df) = Grid(f, Enumerable.Range(0, dense + 1).Select(k => a + (b - a) * k / dense));
            candidates.AddRange(LocalMinima(df).Select(k => (dx[k], df[k])));
        }
        double step0 = dense > 0 ? 2 * window / dense : Math.Pow(hi / lo, 1.0 / (coarse - 1)) - 1;
        double bestX = xs[Array.IndexOf(fs, fs.Min())], bestF = fs.Min();
        foreach (var (x0, f0) in candidates.OrderBy(c => c.F).Take(zoomKeep))
        {
            if (f0 < bestF) { bestF = f0; bestX = x0; }
            double a = x0 * (1 - step0), b = x0 * (1 + step0);
            for (int level = 0; level < zoomLevels; level++)
            {
                var (zx, zf) = Grid(f, Enumerable.Range(0, zoomPoints + 1).Select(k => a + (b - a) * k / zoomPoints));
                int m = Array.IndexOf(zf, zf.Min());
                if (zf[m] < bestF) { bestF = zf[m]; bestX = zx[m]; }
                double step = (b - a) / zoomPoints;
                a = zx[m] - step;
                b = zx[m] + step;
            }
        }
        return bestX;
    }

    private static (double[] X, double[] F) Grid(Func<double, double> f, IEnumerable<double> points)
    {
        var xs = points.ToArray();
        var fs = new double[xs.Length];
        for (int i = 0; i < xs.Length; i++) fs[i] = f(xs[i]);
        return (xs, fs);
    }

    /// <summary>
    /// Minimizes a smooth function of s by Newton steps in log s, with the curvature taken from successive gradients
    /// (secant) and an Armijo backtracking line search; falls back to gradient steps where the curvature is not positive.
    /// </summary>
    public static double GradientMinimum(Func<double, double> f, Func<double, double> dfds, double start, int maxIterations = 100, double tolerance = 1e-7)
    {
        if (!(start > 0) || !double.IsFinite(start)) return start;
        double u = Math.Log(start), s = start, fu = f(s), g = s * dfds(s);
        double prevU = double.NaN, prevG = double.NaN;
        double step = 0.1;
        for (int it = 0; it < maxIterations; it++)
        {
            if (g == 0 || !double.IsFinite(g) || !double.IsFinite(fu)) break;
            double direction;
            double curvature = double.IsNaN(prevU) ? double.NaN : (g - prevG) / (u - prevU);
            direction = curvature > 0 ? -g / curvature : -Math.Sign(g) * step;
            direction = Math.Clamp(direction, -0.5, 0.5);
            double t = 1, fNew = 0, uNew = 0;
            bool accepted = false;
            for (int back = 0; back < 40; back++)
            {
                uNew = u + t * direction;
                fNew = f(Math.Exp(uNew));
                if (fNew <= fu + 1e-4 * t * direction * g) { accepted = true; break; }
                t *= 0.5;
            }
            if (!accepted) break;
            prevU = u; prevG = g;
            u = uNew; fu = fNew; s = Math.Exp(u);
            g = s * dfds(s);
            step = Math.Min(0.5, Math.Abs(t * direction) * 2);
            if (Math.Abs(t * direction) < tolerance) break;
        }
        return s;
    }

    private static IEnumerable<int> LocalMinima(double[] fs)
    {
        for (int i = 0; i < fs.Length; i++)
        {
            bool left = i == 0 || fs[i] <= fs[i - 1];
            bool right = i == fs.Length - 1 || fs[i] <= fs[i + 1];
            if (left && right) yield return i;
        }
    }
}
