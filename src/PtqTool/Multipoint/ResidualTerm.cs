using PtqTool.Rewrite;
using PtqTool.Scales;
using PtqTool.Scales.Losses;

namespace PtqTool.Multipoint;

/// <summary>
/// The second term of a multipoint weight (Liu et al. 2021): W ≈ s₁·q₁ + s₂·q₂, where q₁ are the codes the rewrite
/// chose (nearest or learned) and q₂ quantizes the residual W − s₁·q₁ with its own per-channel scale, chosen by the
/// same weight loss at the same bit width. Every element's error can only shrink: a residual under half a step rounds to
/// 0 (the error stays), anything larger ends within half a step of it or, clipped, strictly closer to it.
/// </summary>
public static class ResidualTerm
{
    /// <summary>W − s₁·q₁ in the weight's own layout.</summary>
    public static float[] Residual(float[] weights, int[] shape, QuantizedWeight first)
    {
        var residual = first.Dequantized(shape);
        for (int i = 0; i < residual.Length; i++) residual[i] = weights[i] - residual[i];
        return residual;
    }

    /// <summary>q₂ and s₂ for the residual of <paramref name="first"/> (same axis, spec and pair constraint as the first term).</summary>
    public static QuantizedWeight Second(float[] weights, int[] shape, QuantizedWeight first, IScaleLoss loss, QuantSpec spec, PairConstraint? pairs = null)
    {
        var residual = Residual(weights, shape, first);
        var second = WeightQuantizer.Quantize(residual, shape, first.Axis, loss, spec, pairs: pairs);
        // A channel whose residual is all zero (its weights already on the grid) gets scale 0 from some losses: any
        // positive scale gives the same all-zero codes and keeps DequantizeLinear well defined.
        var scales = second.Scales.Select(s => s > 0 && float.IsFinite(s) ? s : 1f).ToArray();
        return second with { Scales = scales };
    }
}
