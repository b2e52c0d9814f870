using PtqTool.Scales;

namespace PtqTool.Rounding;

/// <summary>
/// The learnable rounding of one whole weight tensor, for objectives whose gradient comes from elsewhere (block
/// reconstruction runs the block forward and backward in ONNX Runtime and hands back ∂L/∂W̃): each weight is
/// s·clip(⌊w/s⌋ + h(V), l, u) with AdaRound's rectified sigmoid h, V started where h equals the fractional part of w/s
/// (the float weight), and one Adam step per call on ∂L/∂V plus the annealed rounding regularizer. Every code it can
/// return is ⌊w/s⌋ or ⌊w/s⌋ + 1, clipped to the range.
/// </summary>
public sealed class SoftRounding
{
    private readonly float[] _scale;
    private readonly double[] _floor, _v, _m, _second;
    private readonly IntegerRange _range;

    public int Count => _v.Length;

    /// <param name="scales">Each weight's own scale (its channel's).</param>
    /// <param name="start">Codes to start near instead of the float weights: h starts at 1 − <paramref name="lean"/> where a
    /// code is ⌊w/s⌋ + 1 and at <paramref name="lean"/> where it is ⌊w/s⌋ (a code outside those two is treated as the nearer).</param>
    public SoftRounding(ReadOnlySpan<float> weights, float[] scales, IntegerRange range, int[]? start = null, double lean = 0.25)
    {
        if (scales.Length != weights.Length) throw new ArgumentException($"{scales.Length} scales for {weights.Length} weights");
        int n = weights.Length;
        _scale = scales;
        _range = range;
        _floor = new double[n];
        _v = new double[n];
        _m = new double[n];
        _second = new double[n];
        for (int i = 0; i < n; i++)
        {
            double x = scales[i] > 0 ? weights[i] / (double)scales[i] : 0;
            _floor[i] = Math.Floor(x);
            double rest = start is null ? Math.Clamp(x - _floor[i], 1e-6, 1 - 1e-6) : start[i] > _floor[i] ? 1 - lean : lean;
            _v[i] = -Math.Log((AdaRound.Zeta - AdaRound.Gamma) / (rest - AdaRound.Gamma) - 1);
        }
    }

    /// <summary>The relaxed weights s·clip(⌊w/s⌋ + h(V), l, u).</summary>
    public void Soft(Span<float> into)
    {
        for (int i = 0; i < _v.Length; i++) into[i] = (float)(_scale[i] * Math.Clamp(_floor[i] + AdaRound.H(_v[i]), _range.Min, _range.Max));
    }

    /// <summary>The hard rounding: up where h(V) ≥ ½ (V ≥ 0), clipped to the range.</summary>
    public int[] Codes()
    {
        var codes = new int[_v.Length];
        for (int i = 0; i < codes.Length; i++) codes[i] = (int)Math.Clamp(_floor[i] + (_v[i] >= 0 ? 1 : 0), _range.Min, _range.Max);
        return codes;
    }

    /// <summary>
    /// One Adam step on V. The objective is <paramref name="lossScale"/>·L + λ·mean over all <paramref name="regularizedCount"/>
    /// weights of the group of (1 − |2h − 1|^β); β = 0 turns the regularizer off (the warm-up).
    /// </summary>
    /// <param name="gradient">∂L/∂W̃ for this tensor's weights.</param>
    /// <param name="step">The step number from 0 (Adam's bias correction).</param>
    public void Step(ReadOnlySpan<float> gradient, double lossScale, double lambda, double beta, int regularizedCount, double learningRate, int step)
    {
        double reg = beta > 0 ? lambda / regularizedCount : 0;
        double c1 = 1 - Math.Pow(AdaRound.Beta1, step + 1), c2 = 1 - Math.Pow(AdaRound.Beta2, step + 1);
        const double span = AdaRound.Zeta - AdaRound.Gamma;
        for (int i = 0; i < _v.Length; i++)
        {
            double sig = 1 / (1 + Math.Exp(-_v[i]));
            double hRaw = sig * span + AdaRound.Gamma;
            if (hRaw <= 0 || hRaw >= 1) { _m[i] *= AdaRound.Beta1; _second[i] *= AdaRound.Beta2; continue; }   // h clipped: no gradient
            double dhdv = sig * (1 - sig) * span;
            double raw = _floor[i] + hRaw;
            double dRec = raw > _range.Min && raw < _range.Max ? lossScale * gradient[i] * _scale[i] : 0;
            double dReg = 0;
            if (reg > 0)
            {
                double u = 2 * hRaw - 1;
                dReg = -reg * beta * Math.Pow(Math.Abs(u), beta - 1) * Math.Sign(u) * 2;
            }
            double g = (dRec + dReg) * dhdv;
            _m[i] = AdaRound.Beta1 * _m[i] + (1 - AdaRound.Beta1) * g;
            _second[i] = AdaRound.Beta2 * _second[i] + (1 - AdaRound.Beta2) * g * g;
            _v[i] -= learningRate * (_m[i] / c1) / (Math.Sqrt(_second[i] / c2) + AdaRound.Epsilon);
        }
    }
}
