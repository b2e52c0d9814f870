namespace PtqTool.Scales.Losses;

/// <summary>
/// Clips at a percentile: symmetric keeps |x| up to its p-th percentile; asymmetric keeps [q(1−p), q(p)] of the signed
/// values (each tail loses 1 − p).
/// </summary>
public sealed class PercentileLoss(double percentile = 99.99) : IScaleLoss
{
    public double Percentile { get; } = percentile is > 0 and <= 100
        ? percentile
        : throw new PtqException($"--percentile: {percentile} is out of range (0, 100]");

    public string Name => "percentile";

    public QuantParams Choose(IDistribution d, QuantSpec spec)
    {
        double p = Percentile / 100;
        if (spec.Symmetric)
        {
            double t = d.AbsQuantile(p);
            return RangeMapping.FromRange(-t, t, spec);
        }
        return RangeMapping.FromRange(d.Quantile(1 - p), d.Quantile(p), spec);
    }
}
