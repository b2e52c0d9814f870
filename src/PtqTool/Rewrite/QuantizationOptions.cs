using PtqTool.Scales;

namespace PtqTool.Rewrite;

/// <summary>Every choice `ptq quantize` makes, in one immutable record.</summary>
public sealed record QuantizationOptions
{
    /// <summary>minmax, percentile, entropy, msqe or qsin: used for activations and weights.</summary>
    public string Loss { get; init; } = "msqe";
    public double Percentile { get; init; } = 99.99;
    /// <summary>
    /// Loss for weights; null means the activation loss, except entropy, which is a histogram method for activation
    /// distributions (TensorRT also calibrates only activations with it) and degenerates on a channel of a few
    /// weights: weights then use minmax.
    /// </summary>
    public string? WeightLoss { get; init; }

    public string ResolvedWeightLoss => WeightLoss ?? (Loss == "entropy" ? "minmax" : Loss);
    public int ActivationBits { get; init; } = 8;
    /// <summary>
    /// Unsigned (uint8) activations, the default: ONNX Runtime 1.31 on x86 rewrites int8 activation Q/DQ pairs to uint8
    /// before fusing, and that rewrite skips a QuantizeLinear that feeds several DequantizeLinear nodes, so with int8
    /// activations every layer next to a residual branch stays in float (measured in docs/results.md).
    /// </summary>
    public bool UnsignedActivations { get; init; } = true;
    public bool SymmetricActivations { get; init; }
    public int WeightBits { get; init; } = 8;
    public bool PerChannelWeights { get; init; } = true;
    /// <summary>
    /// Bias correction of Conv/Gemm biases from calibration means (see <see cref="BiasCorrection"/>). Off by default:
    /// measured on the bundled models it gains up to 0.7 pt on the plain CNN at W4A8 but loses 1–3 pt on the ResNet,
    /// whose small padded feature maps break the correction's no-padding assumption (docs/results.md).
    /// </summary>
    public bool BiasCorrection { get; init; }
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
        Scales.Losses.ScaleLosses.Create(ResolvedWeightLoss, Percentile);
        return this;
    }
}
