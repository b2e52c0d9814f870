namespace PtqTool.Scales.Losses;

/// <summary>
/// Minimizes the smooth QSin(s) = E[QSin(x; s)] with a gradient method (secant-Newton in log s with line search),
/// starting from the scale that clips nothing (min-max). QSin is within constant factors of MSQE, so its minimizer is a
/// near-optimal MSQE scale.
/// </summary>
public sealed class QSinLoss : IScaleLoss
{
    public string Name => "qsin";

    public QuantParams Choose(IDistribution d, QuantSpec spec) =>
        ZeroPointSearch.Minimize(d, spec, (dist, z, _) => BestScale(dist, z, spec.Range), (dist, s, z) => dist.QSin(s, z, spec.Range));

    public static double BestScale(IDistribution d, int z, IntegerRange r) =>
        ScaleSearch.GradientMinimum(s => d.QSin(s, z, r), s => d.QSinDerivative(s, z, r), ZeroPointSearch.CoveringScale(d, z, r));
}
