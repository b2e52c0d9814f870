namespace PtqTool.Scales.Losses;

/// <summary>The range covers min..max (and 0): nothing is clipped.</summary>
public sealed class MinMaxLoss : IScaleLoss
{
    public string Name => "minmax";

    public QuantParams Choose(IDistribution d, QuantSpec spec) => RangeMapping.FromRange(d.Min, d.Max, spec);
}
