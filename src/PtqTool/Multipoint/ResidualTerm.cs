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
    public static float[] Residual(float[] weights, int[] shape, QuantizedWeight first) => Residual(weights, first.Dequantized(shape));

    /// <summary>W − s₁·q₁ from term 1's dequantized values.</summary>
    public static float[] Residual(float[] weights, float[] first)
    {
        var residual = new float[weights.Length];
        for (int i = 0; i < residual.Length; i++) residual[i] = weights[i] - first[i];
        return residual;
    }

    /// <summary>q₂ and s₂ for the residual of <paramref name="first"/> (same axis, spec and pair constraint as the first term).</summary>
    public static QuantizedWeight Second(float[] weights, int[] shape, QuantizedWeight first, IScaleLoss loss, QuantSpec spec, PairConstraint? pairs = null) =>
        Second(Residual(weights, shape, first), shape, first.Axis, loss, spec, pairs);

    /// <summary>q₂ and s₂ for a residual already computed (<see cref="Residual"/>), per channel along <paramref name="axis"/>.</summary>
    public static QuantizedWeight Second(float[] residual, int[] shape, int axis, IScaleLoss loss, QuantSpec spec, PairConstraint? pairs = null)
    {
        var second = WeightQuantizer.Quantize(residual, shape, axis, loss, spec, pairs: pairs);
        // A channel whose residual is all zero (its weights already on the grid) gets scale 0 from some losses: any
        // positive scale gives the same all-zero codes and keeps DequantizeLinear well defined.
        var scales = second.Scales.Select(s => s > 0 && float.IsFinite(s) ? s : 1f).ToArray();
        return second with { Scales = scales };
    }
}
