namespace PtqTool.Scales.Losses;

/// <summary>
/// Shared driver of the optimizing losses. With a fixed zero point (symmetric) it minimizes over s alone. With a free
/// zero point the (s, z) landscape has local optima that alternating between s and z gets stuck in, so it scans z:
/// a quick best-s search at every step-th zero point (≤ 33 of them), a finer scan around the best, then full
/// searches of s at the two best zero points.
/// </summary>
internal static class ZeroPointSearch
{
    /// <param name="bestScale">Best s for a zero point over a distribution; the flag asks for a quicker, coarser search.</param>
    /// <param name="objective">The loss at (s, z) over a distribution.</param>
    public static QuantParams Minimize(IDistribution d, QuantSpec spec,
        Func<IDistribution, int, bool, double> bestScale, Func<IDistribution, double, int, double> objective)
    {
        var start = RangeMapping.FromRange(d.Min, d.Max, spec);
        if (d.Count == 0 || RangeMapping.IsNegligible(d.Min, d.Max)) return start;
        if (spec.FixedZeroPoint is int fixedZ) return new QuantParams(bestScale(d, fixedZ, false), fixedZ);
        var r = spec.Range;
        // Rank zero points on a coarser histogram with quick searches; settle the best few on the full one.
        var coarse = d.Coarse();
        int step = Math.Max(1, r.Levels / 32);
        var tried = new Dictionary<int, double>();
        double Score(int z)
        {
            if (!tried.TryGetValue(z, out double f)) tried[z] = f = objective(coarse, bestScale(coarse, z, true), z);
            return f;
        }
        int best = start.ZeroPoint;
        double bestF = Score(best);
        for (int pass = 0; pass < 2; pass++)
        {
            int from = pass == 0 ? r.Min : Math.Max(r.Min, best - step + 1);
            int to = pass == 0 ? r.Max : Math.Min(r.Max, best + step - 1);
            int by = pass == 0 ? step : 1;
            for (int z = from; z <= to; z += by)
            {
                double f = Score(z);
                if (f < bestF) { bestF = f; best = z; }
            }
            if (step == 1) break;
        }
        // The quick searches only rank zero points; settle the best two with full searches.
        QuantParams chosen = default;
        double chosenF = double.PositiveInfinity;
        foreach (int z in tried.OrderBy(kv => kv.Value).Take(2).Select(kv => kv.Key))
        {
            double s = bestScale(d, z, false), f = objective(d, s, z);
            if (f < chosenF) { chosenF = f; chosen = new QuantParams(s, z); }
        }
        return chosen;
    }

    /// <summary>An upper end for the scale search at zero point z: a little above the scale that clips nothing.</summary>
    public static double UpperScale(IDistribution d, int z, IntegerRange r) => CoveringScale(d, z, r) * 1.25;

    /// <summary>The scale that clips nothing at zero point z (or, where z leaves one side no levels, that fits the larger side).</summary>
    public static double CoveringScale(IDistribution d, int z, IntegerRange r)
    {
        double cover = RangeMapping.CoveringScale(Math.Min(d.Min, 0), Math.Max(d.Max, 0), z, r);
        if (!double.IsFinite(cover) || cover <= 0)
            cover = Math.Max(Math.Abs(d.Min), Math.Abs(d.Max)) / Math.Max(1, Math.Max(r.Max - z, z - r.Min));
        return cover;
    }
}
