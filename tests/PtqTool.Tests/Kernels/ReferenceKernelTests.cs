using PtqTool.Kernels;

namespace PtqTool.Tests.Kernels;

public class ReferenceKernelTests
{
    [Fact]
    public void X86_pairs_saturate_in_int16_and_vnni_does_not()
    {
        int[] a = [255, 255, 255, 255, 7];
        sbyte[] w = [127, 127, -127, -127, 3];
        Assert.Equal(64770 - 64770 + 21, IntegerDotProduct.Exact(a, w));
        // (255·127 + 255·127) → 32767, (−64770) → −32768, odd tail 21 paired with 0.
        Assert.Equal(32767 - 32768 + 21, IntegerDotProduct.X86PairSaturating(a, w));
        // int8 activations are shifted to u8 on x86: code −1 multiplies as 127.
        Assert.Equal(127 * 100, IntegerDotProduct.Compute(AccumulationModel.X86PairSaturating16, [-1], true, [100]));
    }

    [Fact]
    public void Arm_pairs_wrap_only_when_two_minus_128_weights_meet_minus_128_activations()
    {
        // u8 code 0 is −128 on ARM; (−128)(−128)·2 = 32768 wraps to −32768.
        Assert.Equal(-32768, IntegerDotProduct.Compute(AccumulationModel.ArmPairSigned16, [0, 0], false, [-128, -128]));
        Assert.Equal(2 * 128 * 127, IntegerDotProduct.Compute(AccumulationModel.ArmPairSigned16, [0, 0], false, [-127, -127]));
    }

    public static IEnumerable<object[]> Ranges() => [[0, 255], [0, 127], [40, 200], [-128, 127]];

    [Theory]
    [MemberData(nameof(Ranges))]
    public void Pair_extremes_equal_brute_force_over_every_activation_pair(int lo, int hi)
    {
        var rng = new Random(lo + 1000 * hi);
        for (int trial = 0; trial < 40; trial++)
        {
            int n = rng.Next(1, 9);
            var w = Enumerable.Range(0, n).Select(_ => (sbyte)rng.Next(-128, 128)).ToArray();
            var order = Enumerable.Range(0, n).OrderBy(_ => rng.Next()).ToArray();
            int bruteHigh = 0, bruteLow = 0, anyHigh = 0, anyLow = 0;
            for (int x = lo; x <= hi; x += Math.Max(1, (hi - lo) / 17))
                for (int y = lo; y <= hi; y += Math.Max(1, (hi - lo) / 17))
                {
                    foreach (var (a, b) in new[] { (x, y), (lo, hi), (hi, lo), (lo, lo), (hi, hi) })
                    {
                        for (int r = 0; r < n; r += 2)
                        {
                            int s = a * w[order[r]] + (r + 1 < n ? b * w[order[r + 1]] : 0);
                            bruteHigh = Math.Max(bruteHigh, s);
                            bruteLow = Math.Min(bruteLow, s);
                        }
                        for (int i = 0; i < n; i++)
                            for (int j = 0; j < n; j++)
                            {
                                if (i == j && n > 1) continue;
                                int s = a * w[i] + (i == j ? 0 : b * w[j]);
                                anyHigh = Math.Max(anyHigh, s);
                                anyLow = Math.Min(anyLow, s);
                            }
                    }
                }
            var adjacent = SaturationAnalysis.AdjacentPairs(w, order, lo, hi);
            Assert.Equal((bruteHigh, bruteLow), (adjacent.High, adjacent.Low));
            var any = SaturationAnalysis.AnyTwo(w, order, lo, hi);
            Assert.Equal((anyHigh, anyLow), (any.High, any.Low));
        }
    }

    [Fact]
    public void Projection_onto_the_pair_bound_is_the_nearest_integer_point()
    {
        var rng = new Random(3);
        for (int trial = 0; trial < 500; trial++)
        {
            double xa = rng.NextDouble() * 127, xb = rng.NextDouble() * 127;
            int sign = rng.Next(2) == 0 ? 1 : -1;
            int qa = sign * (int)Math.Round(xa), qb = sign * (int)Math.Round(xb);
            if (Math.Abs(qa) + Math.Abs(qb) <= 128) continue;
            int pa = qa, pb = qb;
            PairBound.Project(ref pa, ref pb, sign * xa, sign * xb, 128, 127);
            double best = double.PositiveInfinity;
            for (int a = -127; a <= 127; a++)
                for (int b = -127; b <= 127; b++)
                    if (Math.Max(a * sign, 0) + Math.Max(b * sign, 0) <= 128 && Math.Max(-a * sign, 0) + Math.Max(-b * sign, 0) <= 128)
                        best = Math.Min(best, Math.Pow(sign * xa - a, 2) + Math.Pow(sign * xb - b, 2));
            Assert.Equal(best, Math.Pow(sign * xa - pa, 2) + Math.Pow(sign * xb - pb, 2), 9);
        }
    }

    [Fact]
    public void Pair_bound_weights_cannot_saturate_and_lose_less_than_seven_bit_weights()
    {
        var rng = new Random(11);
        int[] shape = [24, 16, 3, 3];
        var layout = ReductionLayout.Conv(shape, 1);
        int n = shape.Aggregate(1, (a, b) => a * b), per = n / shape[0];
        // Heavy-tailed weights: large values do meet in some pairs.
        var w = Enumerable.Range(0, n).Select(_ => (float)(Math.Tan((rng.NextDouble() - 0.5) * 2.6) * 0.1)).ToArray();
        var scales = new float[shape[0]];
        for (int c = 0; c < shape[0]; c++) scales[c] = w.AsSpan(c * per, per).ToArray().Max(Math.Abs) / 127;
        var q = new int[n];
        PairBound.Apply(w, layout, c => c, scales, q, 255, 127);
        double boundError = 0, sevenBitError = 0;
        for (int c = 0; c < shape[0]; c++)
        {
            var order = layout.Channel(c);
            for (int r = 0; r + 1 < order.Length; r += 2)
            {
                int a = q[order[r]], b = q[order[r + 1]];
                Assert.True(255 * (Math.Max(a, 0) + Math.Max(b, 0)) <= 32767 && 255 * (Math.Min(a, 0) + Math.Min(b, 0)) >= -32768, $"channel {c} pair {r}: {a}, {b}");
            }
            float s7 = w.AsSpan(c * per, per).ToArray().Max(Math.Abs) / 63;
            for (int i = c * per; i < (c + 1) * per; i++)
            {
                boundError += Math.Pow(w[i] - scales[c] * q[i], 2);
                sevenBitError += Math.Pow(w[i] - s7 * Math.Clamp(Math.Round(w[i] / s7), -63, 63), 2);
            }
        }
        Assert.True(boundError < sevenBitError * 0.6, $"pair-bound error {boundError:G4} vs 7-bit {sevenBitError:G4}");
    }
}
