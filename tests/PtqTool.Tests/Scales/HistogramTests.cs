using PtqTool.Scales;

namespace PtqTool.Tests.Scales;

public class HistogramTests
{
    private static Histogram Of(params float[][] batches)
    {
        var h = new Histogram(256);
        foreach (var b in batches) h.Add(b);
        return h;
    }

    private static void AssertSame(Histogram expected, Histogram actual)
    {
        Assert.Equal(expected.Exponent, actual.Exponent);
        Assert.Equal(expected.Count, actual.Count);
        Assert.Equal(expected.Min, actual.Min);
        Assert.Equal(expected.Max, actual.Max);
        Assert.Equal(expected.Counts.ToArray(), actual.Counts.ToArray());
    }

    [Fact]
    public void Merged_shards_equal_the_histogram_of_the_concatenated_data()
    {
        var small = SyntheticSamples.Draw("normal", 3000, 1);
        var wide = SyntheticSamples.Draw("heavy", 3000, 2).Select(v => v * 7).ToArray();
        var tiny = SyntheticSamples.Draw("uniform", 500, 3).Select(v => v * 0.01f).ToArray();
        var whole = Of([.. small, .. wide, .. tiny]);

        var a = Of(small);
        var b = Of(wide, tiny);
        a.Merge(b);
        AssertSame(whole, a);

        var c = Of(tiny);
        c.Merge(Of(wide));
        c.Merge(Of(small));
        AssertSame(whole, c);
    }

    [Fact]
    public void Growing_range_keeps_every_count()
    {
        var h = Of([0.1f, -0.2f, 0.05f], [3f, -9f], [100f]);
        Assert.Equal(6, h.Count);
        Assert.Equal(6, h.Counts.ToArray().Sum());
        Assert.Equal(7, h.Exponent); // 2^7 = 128 > 100
        Assert.Equal(-9, h.Min);
        Assert.Equal(100, h.Max);
        // every value sits in the bin whose edges contain it
        foreach (float v in new[] { 0.1f, -0.2f, 0.05f, 3f, -9f, 100f })
        {
            int bin = (int)Math.Floor(v / h.BinWidth) + h.BinsPerSide;
            Assert.True(h.Counts[bin] > 0, $"{v} not in bin {bin}");
        }
    }

    [Fact]
    public void Memory_does_not_grow_with_the_number_of_values()
    {
        var h = new Histogram();
        int bins = h.BinCount;
        var rng = new Random(5);
        for (int i = 0; i < 50; i++) h.Add(SyntheticSamples.Draw("laplace", 10_000, i));
        Assert.Equal(bins, h.BinCount);
        Assert.Equal(500_000, h.Count);
    }

    [Fact]
    public void Coarsening_equals_binning_the_data_at_the_coarser_resolution()
    {
        var data = SyntheticSamples.Draw("laplace", 20_000, 8);
        var fine = new Histogram(2048);
        fine.Add(data);
        var coarse = new Histogram(256);
        coarse.Add(data);
        AssertSame(coarse, fine.Coarsened(8));
    }

    [Fact]
    public void Non_finite_values_are_counted_and_left_out()
    {
        var h = Of([1f, float.NaN, float.PositiveInfinity, -2f]);
        Assert.Equal(2, h.Count);
        Assert.Equal(2, h.NonFinite);
        Assert.Equal(-2, h.Min);
    }

    [Theory]
    [InlineData(7)]
    [InlineData(1003)]
    [InlineData(40_000)]
    public void Every_value_lands_in_the_bin_brute_force_gives_it(int length)
    {
        // Long spans take the SIMD paths (one-pass min/max, 8-wide binning into interleaved tables, runs of zeros);
        // the bins must be floor(v / width) exactly, as computed one value at a time in double.
        var rng = new Random(length);
        var values = Enumerable.Range(0, length).Select(i => i % 5 == 0 ? 0f : (float)((rng.NextDouble() - 0.3) * 7)).ToArray();
        for (int i = 0; i < Math.Min(length, 64); i++) values[i] = 0; // a run of zeros
        var h = new Histogram(256);
        h.Add(values);
        var expected = new long[h.BinCount];
        foreach (float v in values) expected[Math.Clamp((int)Math.Floor(v / h.BinWidth) + 256, 0, h.BinCount - 1)]++;
        Assert.Equal(expected, h.Counts.ToArray());
        Assert.Equal(values.Min(), h.Min);
        Assert.Equal(values.Max(), h.Max);
    }

    [Fact]
    public void A_bin_holding_more_values_than_a_16_bit_counter_counts_them_all()
    {
        // The vector path counts into 16-bit tables chunk by chunk: one nonzero value repeated past 4 × 65535 times
        // (and a few others between) must still give exact counts.
        var values = new float[600_001];
        Array.Fill(values, 0.75f);
        for (int i = 0; i < values.Length; i += 99_991) values[i] = -1.5f;
        var h = new Histogram(64);
        h.Add(values);
        var expected = new long[h.BinCount];
        foreach (float v in values) expected[Math.Clamp((int)Math.Floor(v / h.BinWidth) + 64, 0, h.BinCount - 1)]++;
        Assert.Equal(expected, h.Counts.ToArray());
        Assert.True(expected.Max() > 4 * ushort.MaxValue);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_long_span_with_a_wide_range_equals_its_values_added_one_at_a_time(bool withNaN)
    {
        // A long span (vector path, 16-bit tables) whose values span a range 2^11 times wider at its end than at its
        // start and a run of zeros, with or without one NaN (which sends it down the non-finite path), against the values
        // added one at a time (each addition its own range growth and bin merge): same bins, count, min and max.
        var values = Enumerable.Range(0, 100_000).Select(i => (float)(Math.Sin(i * 0.37) * Math.Pow(2, i / 9_000.0))).ToArray();
        for (int i = 20_000; i < 20_500; i++) values[i] = 0;
        if (withNaN) values[70_001] = float.NaN;
        var whole = new Histogram(512);
        whole.Add(values);
        var oneByOne = new Histogram(512);
        foreach (float v in values) oneByOne.Add([v]);
        Assert.True(whole.Exponent >= 4, "the range grew");
        AssertSame(oneByOne, whole);
        Assert.Equal(withNaN ? 1 : 0, whole.NonFinite);
        var expected = new long[whole.BinCount];
        foreach (float v in values.Where(float.IsFinite)) expected[(int)Math.Floor(v / whole.BinWidth) + 512]++;
        Assert.Equal(expected, whole.Counts.ToArray());
    }

    [Fact]
    public void Non_finite_values_inside_long_spans_are_found_too()
    {
        var values = Enumerable.Range(0, 1000).Select(i => (float)Math.Sin(i)).ToArray();
        values[500] = float.NaN;
        values[701] = float.NegativeInfinity;
        var h = new Histogram();
        h.Add(values);
        Assert.Equal(998, h.Count);
        Assert.Equal(2, h.NonFinite);
        Assert.Equal(values.Where(float.IsFinite).Max(), h.Max);
    }

    [Theory]
    [InlineData("normal", 8)]
    [InlineData("laplace", 4)]
    [InlineData("bimodal", 2)]
    [InlineData("relu", 4)]
    public void Histogram_msqe_equals_sample_msqe_of_data_drawn_from_the_histogram(string kind, int bits)
    {
        var h = new Histogram(128);
        h.Add(SyntheticSamples.Draw(kind, 20_000, 11));
        var d = new HistogramDistribution(h);
        // Draw from the histogram: uniform inside each occupied bin, trimmed to [min, max] like the distribution is.
        var rng = new Random(12);
        var drawn = new List<float>();
        for (int i = 0; i < h.BinCount; i++)
        {
            double a = Math.Max(h.LeftEdge(i), h.Min), b = Math.Min(h.LeftEdge(i) + h.BinWidth, h.Max);
            for (long k = 0; k < h.Counts[i] * 50; k++) drawn.Add((float)(a + (b - a) * rng.NextDouble()));
        }
        var r = IntegerRange.Signed(bits);
        var samples = new SampleDistribution(drawn.ToArray());
        foreach (double fraction in new[] { 0.02, 0.1, 0.3, 0.9 })
        {
            double s = fraction * Math.Max(Math.Abs(h.Min), h.Max) / r.Max;
            double exact = d.Msqe(s, 0, r), sampled = samples.Msqe(s, 0, r);
            Assert.True(Math.Abs(exact - sampled) < 0.02 * exact, $"s={s}: histogram {exact}, samples {sampled}");
            double qExact = d.QSin(s, 0, r), qSampled = samples.QSin(s, 0, r);
            Assert.True(Math.Abs(qExact - qSampled) < 0.02 * qExact, $"s={s}: histogram QSin {qExact}, samples {qSampled}");
        }
    }

    [Fact]
    public void Distribution_derivatives_match_finite_differences()
    {
        var h = new Histogram(256);
        h.Add(SyntheticSamples.Draw("laplace", 20_000, 4));
        var hist = new HistogramDistribution(h);
        var samples = new SampleDistribution(SyntheticSamples.Draw("normal", 2_000, 5));
        foreach (var (d, name) in new (IDistribution, string)[] { (hist, "histogram"), (samples, "samples") })
        {
            foreach (var r in new[] { IntegerRange.Int8, IntegerRange.Signed(4), IntegerRange.Signed(2), IntegerRange.UInt8 })
            {
                int z = r.IsSigned ? 0 : 40;
                foreach (double s in new[] { 0.0131, 0.0517, 0.2113, 0.9377 })
                {
                    double hs = 1e-7 * s;
                    // Samples: difference the definition in double precision (the production sum uses float32 sines).
                    Func<double, double> qsin = d is SampleDistribution sq ? ss => sq.Values.ToArray().Average(v => QSinFunction.Value(v, ss, z, r)) : ss => d.QSin(ss, z, r);
                    double fdQ = (qsin(s + hs) - qsin(s - hs)) / (2 * hs);
                    Assert.Equal(fdQ, d.QSinDerivative(s, z, r), 2e-3 * Math.Abs(fdQ) + 1e-9);
                    // Sample MSQE is continuous and piecewise smooth; difference it in double precision.
                    Func<double, double> msqe = d is SampleDistribution sd ? ss => DoubleMsqe(sd, ss, z, r) : ss => d.Msqe(ss, z, r);
                    double fdM = (msqe(s + hs) - msqe(s - hs)) / (2 * hs);
                    Assert.Equal(fdM, d.MsqeDerivative(s, z, r), 2e-3 * Math.Abs(fdM) + 1e-9);
                }
            }
        }
    }

    private static double DoubleMsqe(SampleDistribution d, double s, int z, IntegerRange r)
    {
        double total = 0;
        foreach (float v in d.Values) { double e = v - UniformQuantizer.FakeQuantize(v, s, z, r); total += e * e; }
        return total / d.Count;
    }
}
