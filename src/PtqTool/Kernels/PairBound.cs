namespace PtqTool.Kernels;

/// <summary>
/// 8-bit weights that no x86 vpmaddubsw kernel can saturate. Such a kernel adds each adjacent pair (2j, 2j+1) of the
/// reduction order into an int16, so for activations up to a_max a same-signed pair must keep |q_a| + |q_b| ≤ B
/// (B = ⌊32767 / a_max⌋ = 128 for u8). Projecting every violating pair onto that bound at the loss's own scale moves large
/// pairs by tens of levels (measured: −27 pt on the sample CNN), so the scale is chosen with the bound: for each scale
/// group, candidate scales from the loss's choice up to the one at which no pair can violate the bound are tried, the
/// few remaining violating pairs are moved to the nearest point on the bound, and the candidate with the smallest
/// squared weight error wins. The pair-free end is at most max|w|/63.5 (a 7-bit grid), so this is never worse than 7-bit
/// weights in weight error, and it keeps 8-bit steps wherever the largest weights do not sit side by side.
/// </summary>
public static class PairBound
{
    /// <summary>Candidate scales tried between the loss's scale and the pair-free one.</summary>
    public const int Candidates = 32;

    /// <summary>The largest |q_a| + |q_b| a same-signed pair may have for activations up to <paramref name="activationMax"/> (positive and negative sides).</summary>
    public static (int Positive, int Negative) Bounds(int activationMax) =>
        activationMax <= 0 ? (int.MaxValue, int.MaxValue) : (IntegerDotProduct.Int16Max / activationMax, -IntegerDotProduct.Int16Min / activationMax);

    /// <summary>
    /// Re-chooses the scales and integer weights in place. <paramref name="scaleOf"/> maps a layout channel to its scale
    /// group (per-channel weights: itself; per-tensor: 0). Returns how many pairs sit on the bound after rounding moved them.
    /// </summary>
    public static int Apply(ReadOnlySpan<float> weights, ReductionLayout layout, Func<int, int> scaleOf, float[] scales, int[] q, int activationMax, int weightMax)
    {
        var (pos, neg) = Bounds(activationMax);
        int moved = 0;
        var groups = Enumerable.Range(0, layout.Channels).GroupBy(scaleOf).ToList();
        foreach (var group in groups)
        {
            var channels = group.ToArray();
            float s0 = scales[group.Key];
            if (s0 <= 0 || !float.IsFinite(s0)) continue;
            double worst = 0;
            foreach (int c in channels) worst = Math.Max(worst, LargestPair(weights, layout.Channel(c)));
            // At this scale round(|a|/s) + round(|b|/s) ≤ worst/s + 1 ≤ min(pos, neg): nothing can violate.
            double free = Math.Max(s0, worst / (Math.Min(pos, neg) - 1));
            double bestError = double.PositiveInfinity, bestScale = s0;
            for (int k = 0; k < Candidates; k++)
            {
                double s = Candidates == 1 ? s0 : s0 * Math.Pow(free / s0, k / (double)(Candidates - 1));
                double error = 0;
                foreach (int c in channels) error += Quantize(weights, layout.Channel(c), (float)s, null, pos, neg, weightMax, out _);
                if (error < bestError) { bestError = error; bestScale = s; }
                if (free <= s0) break;
            }
            scales[group.Key] = (float)bestScale;
            foreach (int c in channels)
            {
                Quantize(weights, layout.Channel(c), (float)bestScale, q, pos, neg, weightMax, out int m);
                moved += m;
            }
        }
        return moved;
    }

    /// <summary>
    /// Puts back <paramref name="safe"/>'s codes on every pair of <paramref name="q"/> that breaks the bound for
    /// activations up to <paramref name="activationMax"/> (codes changed after <see cref="Apply"/>, e.g. by learned
    /// rounding). Returns how many pairs were put back.
    /// </summary>
    public static int Restore(ReductionLayout layout, int[] q, ReadOnlySpan<int> safe, int activationMax)
    {
        var (pos, neg) = Bounds(activationMax);
        int restored = 0;
        for (int c = 0; c < layout.Channels; c++)
        {
            var order = layout.Channel(c);
            for (int r = 0; r + 1 < order.Length; r += 2)
            {
                int ia = order[r], ib = order[r + 1];
                int qa = q[ia], qb = q[ib];
                if ((qa > 0 && qb > 0 && qa + qb > pos) || (qa < 0 && qb < 0 && -(qa + qb) > neg))
                {
                    q[ia] = safe[ia];
                    q[ib] = safe[ib];
                    restored++;
                }
            }
        }
        return restored;
    }

    /// <summary>The largest |w_a| + |w_b| over same-signed adjacent pairs of one channel's reduction order.</summary>
    private static double LargestPair(ReadOnlySpan<float> w, ReadOnlySpan<int> order)
    {
        double worst = 0;
        for (int r = 0; r + 1 < order.Length; r += 2)
        {
            float a = w[order[r]], b = w[order[r + 1]];
            if ((a > 0 && b > 0) || (a < 0 && b < 0)) worst = Math.Max(worst, Math.Abs(a) + Math.Abs(b));
        }
        return worst;
    }

    /// <summary>Nearest rounding at scale s, violating pairs moved onto the bound; returns the squared error (in weight units).</summary>
    private static double Quantize(ReadOnlySpan<float> w, ReadOnlySpan<int> order, float s, int[]? q, int pos, int neg, int weightMax, out int moved)
    {
        moved = 0;
        double error = 0;
        for (int r = 0; r < order.Length; r += 2)
        {
            int ia = order[r];
            double xa = w[ia] / (double)s;
            int qa = Round(xa, weightMax);
            if (r + 1 >= order.Length)
            {
                error += Square(w[ia] - s * qa);
                if (q is not null) q[ia] = qa;
                continue;
            }
            int ib = order[r + 1];
            double xb = w[ib] / (double)s;
            int qb = Round(xb, weightMax);
            if (qa > 0 && qb > 0 && qa + qb > pos) { Project(ref qa, ref qb, xa, xb, pos, weightMax); moved++; }
            else if (qa < 0 && qb < 0 && -(qa + qb) > neg) { Project(ref qa, ref qb, xa, xb, neg, weightMax); moved++; }
            error += Square(w[ia] - s * qa) + Square(w[ib] - s * qb);
            if (q is not null) { q[ia] = qa; q[ib] = qb; }
        }
        return error;
    }

    private static int Round(double x, int max) => (int)Math.Clamp(Math.Round(x, MidpointRounding.ToEven), -max, max);

    private static double Square(double x) => x * x;

    /// <summary>The integer point with |qa| + |qb| = bound (signs kept) nearest to (xa, xb); the bound is active since the nearest rounding violates it.</summary>
    internal static void Project(ref int qa, ref int qb, double xa, double xb, int bound, int weightMax)
    {
        int sign = qa > 0 ? 1 : -1;
        double ma = Math.Abs(xa), mb = Math.Abs(xb);
        int bestA = Math.Abs(qa), bestB = Math.Abs(qb);
        double best = double.PositiveInfinity;
        for (int a = Math.Max(0, bound - weightMax); a <= Math.Min(weightMax, bound); a++)
        {
            int b = bound - a;
            double e = (ma - a) * (ma - a) + (mb - b) * (mb - b);
            if (e < best) { best = e; bestA = a; bestB = b; }
        }
        qa = sign * bestA;
        qb = sign * bestB;
    }
}
