using PtqTool.Kernels;
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
    /// <summary>Mixed precision: bits per weight initializer (others use <see cref="WeightBits"/>, which also caps these).</summary>
    public IReadOnlyDictionary<string, int> LayerWeightBits { get; init; } = new Dictionary<string, int>();
    public bool PerChannelWeights { get; init; } = true;
    /// <summary>Store weights whose codes fit 4 bits as ONNX INT4 at opset 21 (<see cref="Int4Storage"/>); int8 storage otherwise.</summary>
    public bool Int4WeightStorage { get; init; }
    /// <summary>
    /// Bias correction of Conv/Gemm biases from calibration means (see <see cref="BiasCorrection"/>). Off by default:
    /// measured on the bundled models it gains up to 0.7 pt on the plain CNN at W4A8 but loses 1–3 pt on the ResNet,
    /// whose small padded feature maps break the correction's no-padding assumption (docs/results.md).
    /// </summary>
    public bool BiasCorrection { get; init; }
    /// <summary>
    /// Bits of embedding tables run as com.microsoft GatherBlockQuantized (<see cref="GatherBlockQuantized"/>): 8 or 4,
    /// 0 keeps them float; null (the default) means 4 with <see cref="Int4WeightStorage"/>, 8 otherwise.
    /// </summary>
    public int? EmbeddingBits { get; init; }
    /// <summary>
    /// How MatMulNBits weights (<see cref="Int4WeightStorage"/>) are rounded: nearest, or gptq (<see cref="PtqTool.Rounding.Gptq"/>,
    /// on the MatMul inputs' Grams from calibration samples); null (the default) is gptq where calibration samples are given.
    /// </summary>
    public string? Int4Rounding { get; init; }
    public int ResolvedEmbeddingBits => EmbeddingBits ?? (Int4WeightStorage ? 4 : 8);
    /// <summary>Cross-layer equalization of the folded graph before planning and calibration (<see cref="Onnx.CrossLayerEqualization"/>).</summary>
    public bool Equalize { get; init; }
    /// <summary>Fold Mul/Add by constants into the Conv beside them (<see cref="Onnx.AffineFolding"/>); off with --keep-affine.</summary>
    public bool FoldAffine { get; init; } = true;
    /// <summary>Empirical bias correction of the quantized model's Convs against FP32 output means (<see cref="Pipeline.OutputBiasCorrectionStep"/>).</summary>
    public bool OutputBiasCorrection { get; init; } = true;
    /// <summary>How weights are rounded to their codes: nearest, adaround (learned per layer on calibration data) or brecq (learned per block); docs/rounding.md.</summary>
    public string Rounding { get; init; } = "nearest";
    /// <summary>
    /// What learned rounding fits each layer's output to: fp32 (the FP32 layer on FP32 inputs: W x ≈ W̃ x̃, the paper's
    /// asymmetric reconstruction, which also absorbs the error of the layers before) or quantized (W x̃ ≈ W̃ x̃).
    /// </summary>
    public string RoundingTarget { get; init; } = "fp32";
    /// <summary>
    /// rise (default): learned rounding puts a layer's nearest codes back where its learned ones raise the model output
    /// loss on held-out calibration samples beyond chance (<see cref="Pipeline.OutputLossCheck"/>); double: only where they
    /// at least double it (beyond chance); off: every layer keeps them.
    /// </summary>
    public string RoundingCheck { get; init; } = "rise";
    /// <summary>Optimizer iterations per layer (--rounding adaround) or per block (--rounding brecq).</summary>
    public int RoundingIterations { get; init; } = PtqTool.Rounding.AdaRound.DefaultIterations;
    /// <summary>
    /// Multipoint weights: the fraction of the model's multiply-adds (per sample) that second weight terms may add, spent
    /// on the output channels whose layer output error falls most per added MAC (docs/multipoint.md); 0 = one term.
    /// </summary>
    public double Multipoint { get; init; }
    /// <summary>How second terms are laid out in the graph (scatter: chosen channels only; padded: whole layers; auto: per layer, fewer MACs).</summary>
    public Multipoint.BranchForm MultipointForm { get; init; } = PtqTool.Multipoint.BranchForm.Auto;
    /// <summary>Node names or op types kept in float.</summary>
    public IReadOnlyList<string> Exclude { get; init; } = [];
    /// <summary>The CPU kind the model is made for (default: the one this process runs on).</summary>
    public KernelTarget Target { get; init; } = CpuInfo.This.NativeTarget;
    /// <summary>A saturation guard other than the target's own (for measuring the alternatives; docs/cpu-targets.md).</summary>
    public SaturationGuard? GuardOverride { get; init; }

    public SaturationGuard Guard => GuardOverride ?? KernelTargets.Guard(Target);

    /// <summary>
    /// The options as the rewrite applies them: a 7-bit guard lowers the weight or activation bits to 7 (if higher), and
    /// pair bounding only acts on 8-bit weights with activations wide enough to saturate a pair.
    /// </summary>
    public QuantizationOptions ForTarget() => Guard switch
    {
        SaturationGuard.SevenBitWeights => this with { WeightBits = Math.Min(WeightBits, 7) },
        SaturationGuard.SevenBitActivations => this with { ActivationBits = Math.Min(ActivationBits, 7) },
        _ => this,
    };

    /// <summary>The largest activation value an x86 kernel multiplies (int8 activations are shifted to u8 there).</summary>
    public int X86ActivationMax => IntegerDotProduct.KernelDomain(AccumulationModel.X86PairSaturating16, !UnsignedActivations,
        ActivationSpec.Range.Min, ActivationSpec.Range.Max).Hi;

    public QuantSpec ActivationSpec => new(
        UnsignedActivations ? IntegerRange.Unsigned(ActivationBits) : IntegerRange.Signed(ActivationBits), SymmetricActivations);

    /// <summary>Weights are symmetric on the restricted signed range [−(2^(b−1)−1), 2^(b−1)−1] (no −128: no int8 overflow in u8s8 kernels).</summary>
    public QuantSpec WeightSpec => SymmetricWeights(WeightBits);

    /// <summary>The spec of one weight tensor: its mixed-precision bits when it has them, capped at <see cref="WeightBits"/>.</summary>
    public QuantSpec WeightSpecFor(string weight) => LayerWeightBits.TryGetValue(weight, out int bits) && bits < WeightBits
        ? SymmetricWeights(bits)
        : WeightSpec;

    /// <summary>Symmetric <paramref name="bits"/>-bit weights on [−(2^(b−1)−1), 2^(b−1)−1].</summary>
    public static QuantSpec SymmetricWeights(int bits) => new(new IntegerRange(-((1 << (bits - 1)) - 1), (1 << (bits - 1)) - 1), Symmetric: true);

    public QuantizationOptions Validated()
    {
        if (ActivationBits is < 2 or > 8) throw new PtqException($"--activation-bits: {ActivationBits} is out of range (2..8)");
        if (WeightBits is < 2 or > 8) throw new PtqException($"--weight-bits: {WeightBits} is out of range (2..8)");
        foreach (var (name, bits) in LayerWeightBits)
            if (bits is < 2 or > 8) throw new PtqException($"weight '{name}': {bits} bits is out of range (2..8)");
        if (Int4Rounding is not (null or "nearest" or "gptq")) throw new PtqException($"--int4-rounding: '{Int4Rounding}' is not nearest or gptq");
        if (Int4Rounding == "gptq" && !Int4WeightStorage) throw new PtqException("--int4-rounding gptq: MatMul weights are 4-bit MatMulNBits only with --weight-storage int4");
        if (Rounding is not ("nearest" or "adaround" or "brecq"))
            throw new PtqException($"--rounding: '{Rounding}' is not nearest, adaround or brecq");
        if (RoundingTarget is not ("fp32" or "quantized")) throw new PtqException($"--rounding-target: '{RoundingTarget}' is not fp32 or quantized");
        if (RoundingCheck is not ("rise" or "double" or "off")) throw new PtqException($"--rounding-check: '{RoundingCheck}' is not rise, double or off");
        if (RoundingIterations is < 1 or > 1_000_000) throw new PtqException($"--rounding-iterations: {RoundingIterations} must be in 1..1000000");
        if (Rounding != "nearest" && BiasCorrection)
            throw new PtqException($"--bias-correction with --rounding {Rounding}: learned rounding already fits each layer's output, mean included; give one");
        if (Rounding == "brecq" && RoundingTarget != "fp32")
            throw new PtqException("--rounding-target quantized with --rounding brecq: block reconstruction fits the FP32 block output; use --rounding adaround for the other target");
        if (Rounding == "brecq" && Multipoint > 0)
            throw new PtqException("--multipoint with --rounding brecq: second terms are learned with per-layer rounding only; use --rounding adaround");
        if (!(Multipoint >= 0 && Multipoint <= 1)) throw new PtqException($"--multipoint: {Multipoint} must be a fraction of the model's multiply-adds in [0, 1]");
        if (Multipoint > 0 && ActivationBits != 8)
            throw new PtqException($"--multipoint with --activation-bits {ActivationBits}: second weight terms are added on 8-bit activations only");
        if (Multipoint > 0 && BiasCorrection)
            throw new PtqException("--bias-correction with --multipoint: the correction is for one term's mean error, which second terms change; give one");
        if (!(Percentile > 0 && Percentile <= 100)) throw new PtqException($"--percentile: {Percentile} must be in (0, 100]");
        Scales.Losses.ScaleLosses.Create(Loss, Percentile);
        Scales.Losses.ScaleLosses.Create(ResolvedWeightLoss, Percentile, WeightLoss is null ? "--loss" : "--weight-loss");
        return this;
    }
}
