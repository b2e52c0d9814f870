namespace PtqTool.Kernels;

/// <summary>
/// The CPU a quantized model is made for. Integer kernels differ by CPU (docs/cpu-targets.md): on x86 without VNNI,
/// ONNX Runtime's u8×s8 kernels add each adjacent pair of products into a saturating int16, so a model that is exact on
/// a VNNI CPU can saturate there. Each target picks a quantization that is exact on that target's kernels.
/// </summary>
public enum KernelTarget
{
    /// <summary>x86 with AVX-512 VNNI or AVX-VNNI: u8×s8 products accumulate in int32 (vpdpbusd); full 8-bit weights.</summary>
    X86Vnni,
    /// <summary>x86 with AVX2 (or AVX-512BW) but no VNNI: pairs of u8×s8 products saturate in int16 (vpmaddubsw).</summary>
    X86Avx2,
    /// <summary>ARM64 (NEON, dot product or I8MM): activations are shifted to s8, pairs of s8×s8 products fit int16 when no weight is −128.</summary>
    Arm64,
    /// <summary>Safe on every x86 and ARM kernel whatever its pairing of the reduction dimension (7-bit weights).</summary>
    Portable,
}

public static class KernelTargets
{
    public static string Name(KernelTarget t) => t switch
    {
        KernelTarget.X86Vnni => "x86-vnni",
        KernelTarget.X86Avx2 => "x86-avx2",
        KernelTarget.Arm64 => "arm64",
        KernelTarget.Portable => "portable",
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    public static IReadOnlyList<string> Names { get; } = ["auto", "x86-vnni", "x86-avx2", "arm64", "portable"];

    /// <summary>Parses a --target value; "auto" is the CPU this process runs on.</summary>
    public static KernelTarget Parse(string value, CpuInfo cpu) => value switch
    {
        "auto" => cpu.NativeTarget,
        "x86-vnni" => KernelTarget.X86Vnni,
        "x86-avx2" => KernelTarget.X86Avx2,
        "arm64" => KernelTarget.Arm64,
        "portable" => KernelTarget.Portable,
        _ => throw new PtqException($"--target: '{value}' is not one of {string.Join(", ", Names)}"),
    };

    /// <summary>The accumulation model of the target's u8/s8 × s8 integer dot products.</summary>
    public static AccumulationModel Accumulation(KernelTarget t) => t switch
    {
        KernelTarget.X86Vnni => AccumulationModel.Int32,
        KernelTarget.X86Avx2 => AccumulationModel.X86PairSaturating16,
        KernelTarget.Arm64 => AccumulationModel.ArmPairSigned16,
        KernelTarget.Portable => AccumulationModel.X86PairSaturating16,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>
    /// Whether the order in which the target's kernels pair the reduction dimension is known: ONNX Runtime 1.31's and 1.32's x86
    /// MLAS packs 4 consecutive reduction values per output column and multiplies them with vpmaddubsw, so the pairs are
    /// (2j, 2j+1) of the reduction order (read from 1.31's MLAS packing and kernels, confirmed on AVX2 kernels in
    /// docs/cpu-targets.md; 1.32 confirmed by OrtKernelAgreementTests on an AVX2-only CPU). Elsewhere any two weights of a channel are assumed to possibly pair.
    /// </summary>
    public static bool KnowsPairing(KernelTarget t) => t is KernelTarget.X86Avx2 or KernelTarget.X86Vnni;

    /// <summary>What the target needs of the weights so that no 16-bit pair can overflow.</summary>
    public static SaturationGuard Guard(KernelTarget t) => t switch
    {
        KernelTarget.X86Vnni => SaturationGuard.None,
        KernelTarget.Arm64 => SaturationGuard.None,
        KernelTarget.X86Avx2 => SaturationGuard.PairBound,
        KernelTarget.Portable => SaturationGuard.SevenBitWeights,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };
}

/// <summary>How the u8/s8 × s8 products of an integer dot product are added up.</summary>
public enum AccumulationModel
{
    /// <summary>Every product accumulated in int32 (VNNI vpdpbusd, ARM dot product): nothing can saturate.</summary>
    Int32,
    /// <summary>
    /// x86 vpmaddubsw: activations as u8 (int8 activations are shifted to u8 first), weights s8; each pair of products
    /// is added into an int16 with saturation, then widened and summed in int32.
    /// </summary>
    X86PairSaturating16,
    /// <summary>ARM NEON smull/smlal2: activations shifted to s8, weights s8; each pair of products is added in int16 (wraps).</summary>
    ArmPairSigned16,
}

/// <summary>What the quantizer does so that the target's kernels cannot saturate.</summary>
public enum SaturationGuard
{
    /// <summary>Nothing: full 8-bit weights in [−127, 127].</summary>
    None,
    /// <summary>
    /// 8-bit weights, rounded so that each pair the kernel adds in int16 stays within it: for every same-signed pair
    /// |q_a| + |q_b| ≤ ⌊32767 / a_max⌋ (128 for u8 activations). Needs the kernel's exact pairing.
    /// </summary>
    PairBound,
    /// <summary>Weights in [−63, 63]: no pair can reach 2·255·63 = 32130 under any pairing (ONNX Runtime's reduce_range).</summary>
    SevenBitWeights,
    /// <summary>Activations in [0, 127]: 2·127·127 = 32258 fits any pairing of 8-bit weights (needs a Clip before each quantizer).</summary>
    SevenBitActivations,
    /// <summary>Weights stored as u8 with zero point 128: x86 runs u8×u8 through 16-bit multiply-adds (vpmaddwd), which cannot saturate.</summary>
    UnsignedWeights,
}

public static class SaturationGuards
{
    public static string Name(SaturationGuard g) => g switch
    {
        SaturationGuard.None => "none",
        SaturationGuard.PairBound => "pair-bound",
        SaturationGuard.SevenBitWeights => "7bit-weights",
        SaturationGuard.SevenBitActivations => "7bit-activations",
        SaturationGuard.UnsignedWeights => "u8-weights",
        _ => throw new ArgumentOutOfRangeException(nameof(g)),
    };

    public static IReadOnlyList<string> Names { get; } = ["none", "pair-bound", "7bit-weights", "7bit-activations", "u8-weights"];

    public static SaturationGuard Parse(string value) =>
        Enum.GetValues<SaturationGuard>().FirstOrDefault(g => Name(g) == value, (SaturationGuard)(-1)) is var g && (int)g >= 0
            ? g
            : throw new PtqException($"--saturation-guard: '{value}' is not one of {string.Join(", ", Names)}");
}
