using System.Numerics.Tensors;
using PtqTool.Scales;

namespace PtqTool.Rounding;

/// <summary>The knobs of <see cref="AdaRound"/> (defaults measured in docs/rounding.md).</summary>
public sealed record AdaRoundOptions
{
    public int Iterations { get; init; } = AdaRound.DefaultIterations;
    /// <summary>λ: weight of the mean rounding regularizer against the row's reconstruction error relative to nearest rounding's.</summary>
    public double Regularization { get; init; } = 3;
    /// <summary>Adam's step on V.</summary>
    public double LearningRate { get; init; } = 0.05;
    /// <summary>Fraction of the iterations with the regularizer off (the paper's warm-up).</summary>
    public double Warmup { get; init; } = 0.2;
    public double StartBeta { get; init; } = 20;
    public double EndBeta { get; init; } = 2;
}

/// <summary>One row's outcome: its codes and its reconstruction error before (the baseline: nearest rounding) and after.</summary>
public sealed record RowRounding(int[] Codes, double NearestError, double Error, int Changed);

/// <summary>
/// One row's reconstruction problem: e(w̃) = c − 2·w̃·t + w̃ᵀ G w̃ = Σ_p (w·x_p − w̃·x̃_p)², with G = Σ x̃ x̃ᵀ over the
/// patches the quantized layer sees, t = (Σ x̃ xᵀ) w and c = wᵀ(Σ x xᵀ)w from the patches the FP32 layer sees (the
/// paper's asymmetric reconstruction). With x = x̃ it is ΔᵀGΔ, Δ = w̃ − w.
/// </summary>
public sealed record RowProblem(float[] Gram, double[] Target, double Constant)
{
    /// <summary>The problem with the same inputs on both sides: t = G w, c = wᵀ G w.</summary>
    public static RowProblem SameInputs(ReadOnlySpan<float> w, float[] gram)
    {
        var t = AdaRound.Multiply(gram, w);
        double c = 0;
        for (int i = 0; i < w.Length; i++) c += w[i] * t[i];
        return new RowProblem(gram, t, c);
    }

    /// <summary>Reference patches x and quantized patches x̃: t = Gx̃x·w, c = wᵀ Gxx w (both K×K row-major, Gx̃x[k, j] = Σ x̃_k x_j).</summary>
    public static RowProblem Asymmetric(ReadOnlySpan<float> w, float[] quantizedGram, ReadOnlySpan<float> cross, ReadOnlySpan<float> referenceGram)
    {
        var t = AdaRound.Multiply(cross, w);
        var r = AdaRound.Multiply(referenceGram, w);
        double c = 0;
        for (int i = 0; i < w.Length; i++) c += w[i] * r[i];
        return new RowProblem(quantizedGram, t, c);
    }

    /// <summary>e(v) = c − 2·v·t + vᵀGv for weights v, accumulated in double (not clipped: a small negative value is rounding around 0).</summary>
    public double Error(ReadOnlySpan<float> v)
    {
        var g = AdaRound.Multiply(Gram, v);
        double e = Constant;
        for (int i = 0; i < v.Length; i++) e += v[i] * (g[i] - 2 * Target[i]);
        return e;
    }
}

/// <summary>
/// AdaRound (Nagel et al., "Up or Down? Adaptive Rounding for Post-Training Quantization", ICML 2020) for one output row
/// of a linear layer y = W x. With the layer's inputs collected into Gram matrices of the im2col patches
/// (<see cref="InputGram"/>), the paper's reconstruction loss Σ_p ‖W x_p − W̃ x̃_p‖² is exactly a sum over rows of
/// <see cref="RowProblem"/>s: rows are independent problems sharing the matrices, and the data enters only through them.
/// Each weight is ⌊w/s⌋ + h(V), h(V) = clip(σ(V)(ζ − γ) + γ, 0, 1) with ζ = 1.1, γ = −0.1 (the rectified sigmoid),
/// V started where h equals w/s − ⌊w/s⌋ (so the start is the float weight). Minimized with Adam: e / (nearest's e)
/// + λ·mean(1 − |2h − 1|^β), the regularizer off for the warm-up and β annealed from 20 to 2 after it; the result rounds
/// up where h ≥ ½, then single-code flips polish it (<see cref="Polish"/>). Every code is ⌊w/s⌋ or ⌊w/s⌋ + 1, clipped
/// to the range, and the result is never worse than nearest rounding.
/// </summary>
public static class AdaRound
{
    public const int DefaultIterations = 1000;
    internal const double Zeta = 1.1, Gamma = -0.1;
    internal const double Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8;

    /// <param name="gram">G, K×K row-major and symmetric: the problem with the same inputs on both sides.</param>
    public static RowRounding Row(ReadOnlySpan<float> w, float s, IntegerRange range, float[] gram, AdaRoundOptions o) =>
        Row(w, s, range, RowProblem.SameInputs(w, gram), o);

    /// <param name="baseline">The codes learned rounding must beat and falls back to (default: nearest rounding's).</param>
    public static RowRounding Row(ReadOnlySpan<float> w, float s, IntegerRange range, RowProblem problem, AdaRoundOptions o, int[]? baseline = null)
    {
        int k = w.Length;
        var gram = problem.Gram;
        if (gram.Length != k * k) throw new ArgumentException($"Gram matrix has {gram.Length} values, not {k}×{k}");
        var floor = new double[k];
        var v = new double[k];
        var nearest = new int[k];
        for (int i = 0; i < k; i++)
        {
            double x = w[i] / (double)s;
            floor[i] = Math.Floor(x);
            double rest = Math.Clamp(x - floor[i], 1e-6, 1 - 1e-6);
            v[i] = -Math.Log((Zeta - Gamma) / (rest - Gamma) - 1);
            nearest[i] = baseline?[i] ?? UniformQuantizer.Quantize(w[i], s, 0, range);
        }
        double nearestError = Error(s, nearest, problem);
        if (!(nearestError > 0) || o.Iterations == 0 || s <= 0) return new RowRounding(nearest, nearestError, nearestError, 0);

        var m = new double[k];
        var second = new double[k];
        var soft = new float[k];
        var gSoft = new float[k];
        var target = problem.Target;
        int warmup = (int)(o.Warmup * o.Iterations);
        for (int t = 0; t < o.Iterations; t++)
        {
            for (int i = 0; i < k; i++) soft[i] = (float)(s * Math.Clamp(floor[i] + H(v[i]), range.Min, range.Max));
            for (int i = 0; i < k; i++) gSoft[i] = TensorPrimitives.Dot(gram.AsSpan(i * k, k), soft);
            double beta = t < warmup ? 0 : o.EndBeta + (o.StartBeta - o.EndBeta) * (1 - (t - warmup) / (double)Math.Max(1, o.Iterations - warmup));
            double reg = t < warmup ? 0 : o.Regularization / k;
            double lr = o.LearningRate;
            double c1 = 1 - Math.Pow(Beta1, t + 1), c2 = 1 - Math.Pow(Beta2, t + 1);
            for (int i = 0; i < k; i++)
            {
                double sig = 1 / (1 + Math.Exp(-v[i]));
                double hRaw = sig * (Zeta - Gamma) + Gamma;
                if (hRaw <= 0 || hRaw >= 1) { m[i] *= Beta1; second[i] *= Beta2; continue; }  // h is clipped: no gradient
                double dhdv = sig * (1 - sig) * (Zeta - Gamma);
                double raw = floor[i] + hRaw;
                double dRec = raw > range.Min && raw < range.Max ? 2 * s * (gSoft[i] - target[i]) / nearestError : 0;
                double dReg = 0;
                if (reg > 0)
                {
                    double u = 2 * hRaw - 1;
                    dReg = -reg * beta * Math.Pow(Math.Abs(u), beta - 1) * Math.Sign(u) * 2;
                }
                double g = (dRec + dReg) * dhdv;
                m[i] = Beta1 * m[i] + (1 - Beta1) * g;
                second[i] = Beta2 * second[i] + (1 - Beta2) * g * g;
                v[i] -= lr * (m[i] / c1) / (Math.Sqrt(second[i] / c2) + Epsilon);
            }
        }
        var codes = new int[k];
        for (int i = 0; i < k; i++) codes[i] = (int)Math.Clamp(floor[i] + (v[i] >= 0 ? 1 : 0), range.Min, range.Max);
        Polish(s, range, problem, floor, codes);
        int changed = 0;
        for (int i = 0; i < k; i++) if (codes[i] != nearest[i]) changed++;
        double error = Error(s, codes, problem);
        // The annealing is a heuristic: never return a rounding worse than the baseline.
        return error <= nearestError ? new RowRounding(codes, nearestError, error, changed) : new RowRounding(nearest, nearestError, nearestError, 0);
    }

    /// <summary>
    /// Single-code flips between ⌊w/s⌋ and ⌊w/s⌋ + 1 (clipped) while one lowers e: flipping code i by δ (in weight units)
    /// changes it by exactly 2δ(G w̃ − t)_i + δ²G_ii. Ends at a rounding no single flip improves (an addition of ours to
    /// the paper's method; it costs O(K) per sweep and O(K) per flip).
    /// </summary>
    private static void Polish(float s, IntegerRange range, RowProblem problem, double[] floor, int[] codes)
    {
        int k = codes.Length;
        var gram = problem.Gram;
        var residual = Multiply(gram, codes.Select(c => (float)(s * (double)c)).ToArray());
        for (int i = 0; i < k; i++) residual[i] -= problem.Target[i];
        for (int sweep = 0; sweep < 100; sweep++)
        {
            bool flipped = false;
            for (int i = 0; i < k; i++)
            {
                int lo = (int)Math.Clamp(floor[i], range.Min, range.Max), hi = (int)Math.Clamp(floor[i] + 1, range.Min, range.Max);
                int other = codes[i] == lo ? hi : lo;
                if (other == codes[i]) continue;
                double d = s * (double)(other - codes[i]);
                double change = 2 * d * residual[i] + d * d * gram[i * k + i];
                if (change >= -1e-12 * Math.Abs(gram[i * k + i]) * d * d) continue;
                codes[i] = other;
                for (int j = 0; j < k; j++) residual[j] += d * gram[i * k + j];
                flipped = true;
            }
            if (!flipped) break;
        }
    }

    /// <summary>e for codes q: c − 2·w̃·t + w̃ᵀGw̃ with w̃ = s·q, accumulated in double.</summary>
    public static double Error(float s, ReadOnlySpan<int> q, RowProblem problem)
    {
        var wq = new float[q.Length];
        for (int i = 0; i < q.Length; i++) wq[i] = (float)(s * (double)q[i]);
        return Math.Max(0, problem.Error(wq));
    }

    /// <summary>M·x for a K×K row-major M, in double.</summary>
    public static double[] Multiply(ReadOnlySpan<float> matrix, ReadOnlySpan<float> x)
    {
        int k = x.Length;
        var y = new double[k];
        for (int i = 0; i < k; i++)
        {
            var row = matrix.Slice(i * k, k);
            double acc = 0;
            for (int j = 0; j < k; j++) acc += row[j] * (double)x[j];
            y[i] = acc;
        }
        return y;
    }

    /// <summary>The rectified sigmoid h(V).</summary>
    public static double H(double v) => Math.Clamp(1 / (1 + Math.Exp(-v)) * (Zeta - Gamma) + Gamma, 0, 1);
}
