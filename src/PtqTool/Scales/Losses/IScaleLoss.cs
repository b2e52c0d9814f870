namespace PtqTool.Scales.Losses;

/// <summary>A rule that chooses a tensor's scale (and zero point) from its distribution.</summary>
public interface IScaleLoss
{
    string Name { get; }
    QuantParams Choose(IDistribution distribution, QuantSpec spec);
}
