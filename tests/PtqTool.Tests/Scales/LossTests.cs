using PtqTool.Scales;
using PtqTool.Scales.Losses;

namespace PtqTool.Tests.Scales;

public class LossTests
{
    public static IEnumerable<object[]> Cases()
    {
        foreach (var kind in new[] { "normal", "laplace", "uniform", "bimodal", "heavy" })
            foreach (int bits in new[] { 8, 4, 2 })
                yield return [kind, bits];
    }

    /// <summary>The smallest MSQE over a dense linear grid of scales.</summary>
    private static double BruteForceMinimum(IDistribution d, IntegerRange r, int z, int points)
    {
        double hi = 1.25 * Math.Max(d.Max / (r.Max - z), -d.Min / (z - r.Min));
        double best = double.PositiveInfinity;
        for (int i = 1; i <= points; i++) best = Math.Min(best, d.Msqe(hi * i / points, z, r));
        return best;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Msqe_search_finds_the_brute_force_global_minimum_on_samples(string kind, int bits)
    {
        var d = new SampleDistribution(SyntheticSamples.Draw(kind, 3000, bits));
        var spec = new QuantSpec(IntegerRange.Signed(bits), Symmetric: true);
        var chosen = new MsqeLoss().Choose(d, spec);
        double found = d.Msqe(chosen.Scale, 0, spec.Range);
        double brute = BruteForceMinimum(d, spec.Range, 0, 8000);
        Assert.True(found <= brute * 1.001, $"{kind} {bits}-bit: search {found}, brute force {brute}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Msqe_search_finds_the_brute_force_global_minimum_on_histograms(string kind, int bits)
    {
        var h = new Histogram();
        h.Add(SyntheticSamples.Draw(kind, 50_000, bits + 100));
        var d = new HistogramDistribution(h);
        var spec = new QuantSpec(IntegerRange.Signed(bits), Symmetric: true);
        double found = d.Msqe(new MsqeLoss().Choose(d, spec).Scale, 0, spec.Range);
        double brute = BruteForceMinimum(d, spec.Range, 0, 4000);
        Assert.True(found <= brute * 1.001, $"{kind} {bits}-bit: search {found}, brute force {brute}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Qsin_scale_is_within_a_few_percent_of_the_msqe_optimum(string kind, int bits)
    {
        var h = new Histogram();
        h.Add(SyntheticSamples.Draw(kind, 50_000, bits + 200));
        var d = new HistogramDistribution(h);
        var spec = new QuantSpec(IntegerRange.Signed(bits), Symmetric: true);
        double best = d.Msqe(new MsqeLoss().Choose(d, spec).Scale, 0, spec.Range);
        double qsin = d.Msqe(new QSinLoss().Choose(d, spec).Scale, 0, spec.Range);
        double minmax = d.Msqe(new MinMaxLoss().Choose(d, spec).Scale, 0, spec.Range);
        Assert.True(qsin <= best * 1.05, $"{kind} {bits}-bit: qsin {qsin}, msqe optimum {best}, minmax {minmax}");
        Assert.True(best <= minmax * (1 + 1e-9));
    }

    [Theory]
    [InlineData("relu", 8)]
    [InlineData("bimodal", 4)]
    [InlineData("normal", 8)]
    public void Asymmetric_msqe_is_no_worse_than_any_zero_point_on_a_grid(string kind, int bits)
    {
        var raw = SyntheticSamples.Draw(kind, 4000, 9).Select(v => v + 0.7f).ToArray();
        var d = new SampleDistribution(raw);
        var spec = new QuantSpec(IntegerRange.Signed(bits), Symmetric: false);
        var chosen = new MsqeLoss().Choose(d, spec);
        double found = d.Msqe(chosen.Scale, chosen.ZeroPoint, spec.Range);
        double brute = double.PositiveInfinity;
        for (int z = spec.Range.Min; z <= spec.Range.Max; z += Math.Max(1, spec.Range.Levels / 32))
        {
            double hi = 1.25 * ((d.Max - Math.Min(0, d.Min)) / (spec.Range.Levels - 1)) * 2;
            for (int i = 1; i <= 600; i++) brute = Math.Min(brute, d.Msqe(hi * i / 600, z, spec.Range));
        }
        Assert.True(found <= brute * 1.01, $"asymmetric search {found} ({chosen}), grid {brute}");
        double minmax = d.Msqe(new MinMaxLoss().Choose(d, spec).Scale, new MinMaxLoss().Choose(d, spec).ZeroPoint, spec.Range);
        Assert.True(found <= minmax);
    }

    [Fact]
    public void Minmax_matches_the_range_formula()
    {
        var d = new SampleDistribution([-1f, 0.5f, 3f]);
        var asym = new MinMaxLoss().Choose(d, new QuantSpec(IntegerRange.UInt8, false));
        Assert.Equal(4.0 / 255, asym.Scale, 12);
        Assert.Equal(64, asym.ZeroPoint); // round(0 − (−1)/(4/255)) = round(63.75)
        var sym = new MinMaxLoss().Choose(d, new QuantSpec(IntegerRange.Int8, true));
        Assert.Equal(3.0 / 127, sym.Scale, 12);
        Assert.Equal(0, sym.ZeroPoint);
        var positive = new MinMaxLoss().Choose(new SampleDistribution([0.5f, 2f]), new QuantSpec(IntegerRange.Int8, false));
        Assert.Equal(2.0 / 255, positive.Scale, 12); // range widened to include 0
        Assert.Equal(-128, positive.ZeroPoint);
    }

    [Fact]
    public void Percentile_matches_a_hand_computed_example()
    {
        // |x| = 1..100: the 99th percentile by linear interpolation is at position 0.99·99 = 98.01 → 99.01.
        var d = new SampleDistribution(Enumerable.Range(1, 100).Select(i => (float)(i % 2 == 0 ? i : -i)).ToArray());
        var p = new PercentileLoss(99).Choose(d, new QuantSpec(IntegerRange.Int8, true));
        Assert.Equal(99.01 / 127, p.Scale, 9);
        // Asymmetric: signed quantiles at 1% and 99% of −99..100 (sorted: −99, −97, ..., 100).
        var sorted = Enumerable.Range(1, 100).Select(i => (double)(i % 2 == 0 ? i : -i)).Order().ToArray();
        double lo = sorted[0] + 0.99 * (sorted[1] - sorted[0]), hi = sorted[98] + 0.01 * (sorted[99] - sorted[98]);
        var a = new PercentileLoss(99).Choose(d, new QuantSpec(IntegerRange.Int8, false));
        Assert.Equal((hi - lo) / 255, a.Scale, 9);
    }

    [Fact]
    public void Percentile_on_a_histogram_interpolates_inside_bins()
    {
        var h = new Histogram(4);
        // 2^E = 4 > 3: bins of width 1 over [−4, 4]; 75 values in [0,1), 25 in [2,3).
        h.Add(Enumerable.Repeat(0.5f, 75).Concat(Enumerable.Repeat(2.5f, 25)).ToArray());
        var d = new HistogramDistribution(h);
        // Trimmed to [min, max] = [0.5, 2.5]: the first bin is the point 0.5, the last [2, 2.5].
        Assert.Equal(2.25, d.AbsQuantile(0.875), 9);
    }

    [Fact]
    public void Kl_divergence_matches_a_hand_computed_value()
    {
        // P = [1,3]/4, Q = [1,1]/2: 0.25·ln(0.5) + 0.75·ln(1.5)
        double expected = 0.25 * Math.Log(0.5) + 0.75 * Math.Log(1.5);
        Assert.Equal(expected, EntropyLoss.KlDivergence([1, 3], [1, 1]), 12);
    }

    [Fact]
    public void Entropy_threshold_matches_hand_computed_examples()
    {
        // Uniform [1,1,1,1] with 2 levels (zero bin kept, one group for the rest): keeping 2 bins gives
        // KL([1,3]‖[1,1]) = 0.131, 3 bins KL([1,1,2]‖[1,1,1]) = 0.059, 4 bins 0 → keep all 4.
        Assert.Equal(4, EntropyLoss.Threshold([1, 1, 1, 1], 2));
        // All mass in the first bin: every candidate has KL 0; the first (2 bins) is kept.
        Assert.Equal(2, EntropyLoss.Threshold([10, 0, 0, 0], 2));
        // A long thin tail: keeping 3 bins gives KL ≈ 0.004, all 10 ≈ 0.207 (the tail group smears 71 over 3 bins).
        double[] tail = [50, 40, 30, 0, 0, 0, 0, 0, 0, 1];
        int keep = EntropyLoss.Threshold(tail, 2);
        Assert.Equal(3, keep);
    }

    [Fact]
    public void Per_channel_split_gathers_each_slice_along_the_axis()
    {
        // shape [2,3,2], axis 1: channel c holds x[o, c, i] for o in 0..1, i in 0..1.
        var x = Enumerable.Range(0, 12).Select(i => (float)i).ToArray();
        var parts = PerChannel.Split(x, [2, 3, 2], 1);
        Assert.Equal(new float[] { 0, 1, 6, 7 }, parts[0]);
        Assert.Equal(new float[] { 2, 3, 8, 9 }, parts[1]);
        Assert.Equal(new float[] { 4, 5, 10, 11 }, parts[2]);
        var scales = PerChannel.Choose(x, [2, 3, 2], 1, new MinMaxLoss(), new QuantSpec(IntegerRange.Int8, true));
        Assert.Equal(7.0 / 127, scales[0].Scale, 12);
        Assert.Equal(11.0 / 127, scales[2].Scale, 12);
    }

    [Fact]
    public void Tiny_channels_keep_minmax_while_larger_ones_use_the_loss()
    {
        // Two channels along axis 0: 9 values (a 3×3 kernel) and 64 values, each with one large weight.
        var rng = new Random(4);
        var shape = new[] { 2, 64 };
        var values = new float[128];
        for (int i = 0; i < 128; i++) values[i] = (float)SyntheticSamples.Normal(rng);
        values[0] = 6; values[64] = 6;
        var spec = new QuantSpec(IntegerRange.Signed(4), true);
        // Channel 0 holds 64 values here: the loss applies, and it clips the outlier.
        var big = PerChannel.Choose(values, shape, 0, new MsqeLoss(), spec);
        Assert.True(big[0].Scale < 6.0 / 7 * 0.99);
        // A 9-value channel: minmax.
        var small = PerChannel.Choose(values.AsSpan(0, 18).ToArray(), [2, 9], 0, new MsqeLoss(), spec);
        Assert.Equal(6.0 / 7, small[0].Scale, 9);
    }

    [Theory]
    [InlineData("minmax")]
    [InlineData("msqe")]
    [InlineData("qsin")]
    [InlineData("entropy")]
    [InlineData("percentile")]
    public void Dead_channels_of_denormal_weights_quantize_to_zero_with_a_harmless_scale(string lossName)
    {
        // PaddleOCR's recognizer has channels whose weights are float denormals (±3e-40): s = max/127 would be a denormal
        // too, 1/s overflows float, and QSin's sin(πx/s) became NaN. Such a channel is zero at any sensible precision.
        var rng = new Random(5);
        var values = new float[2 * 64];
        for (int i = 0; i < 64; i++) values[i] = (float)((rng.NextDouble() - 0.5) * 6e-40);
        for (int i = 64; i < 128; i++) values[i] = (float)SyntheticSamples.Normal(rng);
        var loss = ScaleLosses.Create(lossName);
        foreach (var symmetric in new[] { true, false })
        {
            var spec = new QuantSpec(symmetric ? IntegerRange.Signed(8) : IntegerRange.Unsigned(8), symmetric);
            var chosen = PerChannel.Choose(values, [2, 64], 0, loss, spec);
            Assert.Equal(RangeMapping.ScaleOfZeroRange, chosen[0].Scale);
            for (int i = 0; i < 64; i++)
                Assert.Equal(0.0, UniformQuantizer.FakeQuantize(values[i], chosen[0].Scale, chosen[0].ZeroPoint, spec.Range));
            // The live channel is untouched: a finite scale near its own range.
            Assert.InRange(chosen[1].Scale, 1e-3, 1);
        }
    }
}
