using PtqTool.Scales;

namespace PtqTool.Rewrite;

/// <summary>Every choice `ptq quantize` makes, in one immutable record.</summary>
public sealed record QuantizationOptions
{
    /// <summary>minmax, percentile, entropy, msqe or qsin: used for activations and weights.</summary>
    public string Loss { get; init; } = "msqe";
    public double Percentile { get; init; } = 99.99;
    public int ActivationBits { get; init; } = 8;
    /// <summary>uint8-style unsigned activations instead of int8 (S8S8 is the default: see docs).</summary>
    public bool UnsignedActivations { get; init; }
    public bool SymmetricActivations { get; init; }
    public int WeightBits { get; init; } = 8;
    public bool PerChannelWeights { get; init; } = true;
    /// <summary>Node names or op types kept in float.</summary>
    public IReadOnlyList<string> Exclude { get; init; } = [];

    public QuantSpec ActivationSpec => new(
        UnsignedActivations ? IntegerRange.Unsigned(ActivationBits) : IntegerRange.Signed(ActivationBits), SymmetricActivations);

    /// <summary>Weights are symmetric on the restricted signed range [−(2^(b−1)−1), 2^(b−1)−1] (no −128: no int8 overflow in u8s8 kernels).</summary>
    public QuantSpec WeightSpec => new(new IntegerRange(-((1 << (WeightBits - 1)) - 1), (1 << (WeightBits - 1)) - 1), Symmetric: true);

    public QuantizationOptions Validated()
    {
        if (ActivationBits is < 2 or > 8) throw new PtqException($"--activation-bits: {ActivationBits} is out of range (2..8)");
        if (WeightBits is < 2 or > 8) throw new PtqException($"--weight-bits: {WeightBits} is out of range (2..8)");
        Scales.Losses.ScaleLosses.Create(Loss, Percentile);
        return this;
    }
}
