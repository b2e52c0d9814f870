namespace PtqTool.Scales.Losses;

/// <summary>The global minimum of MSQE(s) = E[(x − Q(x; s))²], found by a coarse log grid and zooming (MSQE has many local minima).</summary>
public sealed class MsqeLoss : IScaleLoss
{
    /// <summary>The search runs over [UpperScale·LowerFraction, UpperScale].</summary>
    public const double LowerFraction = 1e-4;

    public string Name => "msqe";

    public QuantParams Choose(IDistribution d, QuantSpec spec) =>
        ZeroPointSearch.Minimize(d, spec, (dist, z, quick) => BestScale(dist, z, spec.Range, quick), (dist, s, z) => dist.Msqe(s, z, spec.Range));

    public static double BestScale(IDistribution d, int z, IntegerRange r, bool quick = false)
    {
        double hi = ZeroPointSearch.UpperScale(d, z, r);
        return quick
            ? ScaleSearch.GlobalMinimum(s => d.Msqe(s, z, r), hi * LowerFraction, hi, coarse: 64, keep: 2, dense: 0, zoomKeep: 2, zoomPoints: 16, zoomLevels: 2)
            : ScaleSearch.GlobalMinimum(s => d.Msqe(s, z, r), hi * LowerFraction, hi);
    }
}
