using PtqTool.Multipoint;
using PtqTool.Rewrite;
using PtqTool.Scales.Losses;

namespace PtqTool.Tests.Multipoint;

/// <summary>Term 2 of a multipoint weight: the two-term weight is never further from W than one term, channel by channel, and what a term buys a layer is exactly the output error computed from its input patches.</summary>
public class ResidualTermTests
{
    private static float[] RandomWeights(int count, int seed)
    {
        var rng = new Random(seed);
        // Laplace-like weights with a few large values per channel, as trained layers have.
        return Enumerable.Range(0, count).Select(_ => (float)(-Math.Log(1 - rng.NextDouble()) * (rng.Next(2) * 2 - 1) * 0.05)).ToArray();
    }

    [Theory]
    [InlineData(2, "msqe")]
    [InlineData(3, "msqe")]
    [InlineData(4, "qsin")]
    [InlineData(4, "minmax")]
    [InlineData(8, "msqe")]
    public void Two_terms_never_reconstruct_a_channel_worse_than_one(int bits, string loss)
    {
        int[] shape = [16, 8, 3, 3];
        var w = RandomWeights(16 * 72, bits * 31);
        var spec = QuantizationOptions.SymmetricWeights(bits);
        var rule = ScaleLosses.Create(loss);
        var first = WeightQuantizer.Quantize(w, shape, 0, rule, spec);
        var second = ResidualTerm.Second(w, shape, first, rule, spec);
        Assert.All(second.Values, v => Assert.InRange(v, spec.Range.Min, spec.Range.Max));
        double total1 = 0, total2 = 0;
        for (int c = 0; c < 16; c++)
        {
            double one = 0, two = 0;
            for (int i = c * 72; i < (c + 1) * 72; i++)
            {
                double e1 = w[i] - (double)first.Scales[c] * first.Values[i];
                double e2 = e1 - (double)second.Scales[c] * second.Values[i];
                Assert.True(Math.Abs(e2) <= Math.Abs(e1) + 1e-7, $"channel {c}, weight {i}: |{e2}| > |{e1}|");
                one += e1 * e1;
                two += e2 * e2;
            }
            Assert.True(two <= one + 1e-12, $"channel {c}: {two} > {one}");
            total1 += one;
            total2 += two;
        }
        // A second term divides the error several times over (2 bits: 3 levels, measured 3.7×; 4 bits: ~40×).
        Assert.True(total2 < total1 / (bits == 2 ? 2 : 4), $"{total2} vs {total1}");
    }

    [Fact]
    public void A_channel_already_on_the_grid_gets_zero_codes_and_a_valid_scale()
    {
        int[] shape = [2, 4];
        float[] w = [0.5f, -0.25f, 0.25f, 0, 0.3f, -0.1f, 0.07f, 0.2f];
        var spec = QuantizationOptions.SymmetricWeights(4);
        var first = new QuantizedWeight([4, -2, 2, 0, 5, -2, 1, 3], [0.125f, 0.0625f], 0, 0);
        var second = ResidualTerm.Second(w, shape, first, new MsqeLoss(), spec);
        Assert.Equal([0, 0, 0, 0], second.Values[..4]);
        Assert.All(second.Scales, s => Assert.True(s > 0 && float.IsFinite(s)));
    }

    [Fact]
    public void A_rows_gain_is_the_fall_of_its_output_error_against_the_fp32_layer_over_the_patches()
    {
        var rng = new Random(5);
        int k = 12, patches = 300;
        // x: the FP32 model's patches; x̃: the quantized model's (x plus the error of earlier layers).
        var x = Enumerable.Range(0, patches).Select(_ => Enumerable.Range(0, k).Select(_ => (float)Math.Max(0, rng.NextDouble() * 2 - 0.5)).ToArray()).ToArray();
        var xq = x.Select(p => p.Select(v => v + (float)(rng.NextDouble() - 0.5) * 0.1f).ToArray()).ToArray();
        float[] Gram(float[][] a, float[][] b)
        {
            var g = new float[k * k];
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++)
                    g[i * k + j] = (float)Enumerable.Range(0, patches).Sum(p => a[p][i] * (double)b[p][j]);
            return g;
        }
        var w = RandomWeights(k, 9);
        var first = w.Select(v => 0.03f * MathF.Round(v / 0.03f)).ToArray();
        var second = w.Zip(first, (v, f) => 0.004f * MathF.Round((v - f) / 0.004f)).ToArray();
        var problem = PtqTool.Rounding.RowProblem.Asymmetric(w, Gram(xq, xq), Gram(xq, x), Gram(x, x));
        var gain = RowGain.Of(problem, first, second);
        double Error(Func<int, double> v) => Enumerable.Range(0, patches).Sum(p =>
            Math.Pow(Enumerable.Range(0, k).Sum(i => w[i] * (double)x[p][i] - v(i) * xq[p][i]), 2));
        double scale = gain.Energy;
        Assert.Equal(Error(i => first[i]), gain.OneTermError, 1e-5 * scale);
        Assert.Equal(Error(i => first[i] + second[i]), gain.TwoTermError, 1e-5 * scale);
        Assert.Equal(x.Sum(p => Math.Pow(Enumerable.Range(0, k).Sum(i => w[i] * (double)p[i]), 2)), gain.Energy, 1e-5 * scale);
        Assert.Equal(xq.Sum(p => Math.Pow(Enumerable.Range(0, k).Sum(i => second[i] * (double)p[i]), 2)), gain.SecondTermEnergy, 1e-5 * scale);
        Assert.True(gain.Gain > 0);
        // Term 2's own problem, once term 1 is fixed, gives the same errors for any d.
        var p2 = RowGain.SecondTermProblem(problem, first);
        Assert.Equal(gain.OneTermError, p2.Error(new float[k]), 1e-5 * scale);
        Assert.Equal(gain.TwoTermError, p2.Error(second), 1e-5 * scale);
    }

    [Fact]
    public void The_budget_buys_the_best_value_per_multiply_add_first_and_is_never_exceeded()
    {
        var rng = new Random(3);
        var candidates = Enumerable.Range(0, 60).Select(i => new TermCandidate(i % 4, [i], rng.Next(1, 100), rng.NextDouble() - 0.1)).ToList();
        foreach (long budget in new long[] { 0, 1, 50, 500, 1000, 100_000 })
        {
            var chosen = TermSelection.Choose(candidates, budget);
            Assert.True(chosen.Sum(c => c.Macs) <= budget);
            Assert.All(chosen, c => Assert.True(c.Value > 0));
            // Greedy by value per MAC: every candidate left out either buys nothing or did not fit in what was left
            // when its turn came, i.e. it costs more than the budget minus what was chosen before it.
            var order = candidates.Where(c => c.Value > 0).OrderByDescending(c => c.ValuePerMac).ToList();
            long spent = 0;
            foreach (var c in order)
            {
                bool taken = chosen.Contains(c);
                Assert.Equal(c.Macs <= budget - spent, taken);
                if (taken) spent += c.Macs;
            }
            if (budget >= candidates.Sum(c => c.Macs)) Assert.Equal(candidates.Count(c => c.Value > 0), chosen.Count);
        }
    }
}
