using PtqTool.Rounding;

namespace PtqTool.Multipoint;

/// <summary>
/// What a second term buys one output row (channel) of a layer, against the FP32 layer's output: with the row's problem
/// e(v) = c − 2·v·t + vᵀG̃v = Σ_p (w·x_p − v·x̃_p)² over every input patch (x from the FP32 model, x̃ from the quantized
/// one; <see cref="RowProblem"/>), the gain of term 2 is e(w̃₁) − e(w̃₁ + w̃₂), and the row's FP32 output energy is c.
/// </summary>
public sealed record RowGain(double OneTermError, double TwoTermError, double Energy, double SecondTermEnergy)
{
    public double Gain => OneTermError - TwoTermError;

    /// <param name="first">s₁·q₁, the row as quantized now.</param>
    /// <param name="second">s₂·q₂, its second term.</param>
    public static RowGain Of(RowProblem problem, ReadOnlySpan<float> first, ReadOnlySpan<float> second)
    {
        var sum = new float[first.Length];
        for (int i = 0; i < sum.Length; i++) sum[i] = first[i] + second[i];
        return new RowGain(problem.Error(first), problem.Error(sum), problem.Constant, Quadratic(problem.Gram, second));
    }

    /// <summary>The problem term 2 faces once term 1 is fixed: e(w̃₁ + d) = e(w̃₁) − 2·d·(t − G̃w̃₁) + dᵀG̃d.</summary>
    public static RowProblem SecondTermProblem(RowProblem problem, ReadOnlySpan<float> first)
    {
        var g = AdaRound.Multiply(problem.Gram, first);
        var t = new double[first.Length];
        for (int i = 0; i < t.Length; i++) t[i] = problem.Target[i] - g[i];
        return new RowProblem(problem.Gram, t, problem.Error(first));
    }

    /// <summary>vᵀ G v (G K×K row-major).</summary>
    public static double Quadratic(float[] gram, ReadOnlySpan<float> v)
    {
        var gv = AdaRound.Multiply(gram, v);
        double sum = 0;
        for (int i = 0; i < v.Length; i++) sum += v[i] * gv[i];
        return sum;
    }
}
