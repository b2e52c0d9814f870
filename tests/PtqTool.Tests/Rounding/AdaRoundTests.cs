using PtqTool.Rounding;
using PtqTool.Scales;

namespace PtqTool.Tests.Rounding;

/// <summary>AdaRound on single rows and layers, checked against the reconstruction error computed from the inputs themselves and against exhaustive search.</summary>
public class AdaRoundTests
{
    private static readonly IntegerRange FourBit = new(-7, 7);

    /// <summary>Inputs with correlated features (a random mixing of independent ones), as a layer's input patches are: [samples, k].</summary>
    private static float[] CorrelatedInputs(Random rng, int samples, int k)
    {
        var mix = Enumerable.Range(0, k * k).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
        var x = new float[samples * k];
        var z = new double[k];
        for (int p = 0; p < samples; p++)
        {
            for (int i = 0; i < k; i++) z[i] = Gaussian(rng);
            for (int i = 0; i < k; i++)
            {
                double v = z[i];
                for (int j = 0; j < k; j++) v += 0.5 * mix[i * k + j] * z[j];
                x[p * k + i] = (float)Math.Max(0, v + 0.3);   // Relu'd, not centred: the mean matters too
            }
        }
        return x;
    }

    private static double Gaussian(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    /// <summary>Σ_p a_p b_pᵀ (K×K row-major) of two inputs [samples, k].</summary>
    private static float[] Cross(float[] a, float[] b, int samples, int k)
    {
        var g = new double[k * k];
        for (int p = 0; p < samples; p++)
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++) g[i * k + j] += a[p * k + i] * (double)b[p * k + j];
        return g.Select(v => (float)v).ToArray();
    }

    private static float[] Gram(float[] x, int samples, int k) => Cross(x, x, samples, k);

    /// <summary>Σ_p (w·x_p − s·q·x̃_p)², straight from the inputs (not from a Gram matrix); x̃ = x when not given.</summary>
    private static double OutputError(float[] w, float s, int[] q, float[] x, int samples, float[]? xq = null)
    {
        int k = w.Length;
        xq ??= x;
        double e = 0;
        for (int p = 0; p < samples; p++)
        {
            double d = 0;
            for (int i = 0; i < k; i++) d += w[i] * (double)x[p * k + i] - s * (double)q[i] * xq[p * k + i];
            e += d * d;
        }
        return e;
    }

    private static float[] RandomRow(Random rng, int k) => Enumerable.Range(0, k).Select(_ => (float)(Gaussian(rng) * 0.1)).ToArray();

    [Fact]
    public void Every_code_is_the_floor_or_the_floor_plus_one_clipped_to_the_range()
    {
        var rng = new Random(3);
        const int k = 40, samples = 300;
        var x = CorrelatedInputs(rng, samples, k);
        var g = Gram(x, samples, k);
        for (int row = 0; row < 6; row++)
        {
            var w = RandomRow(rng, k);
            // A small scale clips the largest weights: those too may only land on the clipped floor or floor + 1.
            float s = (float)(w.Max(Math.Abs) / (row % 2 == 0 ? 7.0 : 4.0));
            var r = AdaRound.Row(w, s, FourBit, g, new AdaRoundOptions { Iterations = 300 });
            for (int i = 0; i < k; i++)
            {
                int floor = (int)Math.Floor(w[i] / (double)s);
                int lo = Math.Clamp(floor, FourBit.Min, FourBit.Max), hi = Math.Clamp(floor + 1, FourBit.Min, FourBit.Max);
                Assert.True(r.Codes[i] == lo || r.Codes[i] == hi, $"row {row} weight {i}: w/s = {w[i] / s:F3}, code {r.Codes[i]}");
            }
        }
    }

    [Fact]
    public void On_a_random_layer_the_output_error_is_below_nearest_roundings_on_every_row_and_well_below_in_total()
    {
        var rng = new Random(11);
        const int k = 48, samples = 400, rows = 12;
        var x = CorrelatedInputs(rng, samples, k);
        var g = Gram(x, samples, k);
        double nearestTotal = 0, learnedTotal = 0;
        for (int row = 0; row < rows; row++)
        {
            var w = RandomRow(rng, k);
            float s = (float)(w.Max(Math.Abs) / 7.0);
            var nearest = w.Select(v => UniformQuantizer.Quantize(v, s, 0, FourBit)).ToArray();
            var r = AdaRound.Row(w, s, FourBit, g, new AdaRoundOptions());
            double en = OutputError(w, s, nearest, x, samples), ea = OutputError(w, s, r.Codes, x, samples);
            Assert.True(ea <= en * (1 + 1e-5), $"row {row}: {ea} vs nearest {en}");
            // The row's reported errors are the ones the inputs give.
            Assert.Equal(en, r.NearestError, en * 1e-3);
            Assert.Equal(ea, r.Error, Math.Max(ea, 1e-12) * 1e-3);
            nearestTotal += en;
            learnedTotal += ea;
        }
        Assert.True(learnedTotal < 0.8 * nearestTotal, $"learned {learnedTotal:G4} vs nearest {nearestTotal:G4}");
    }

    [Fact]
    public void Fitting_the_fp32_output_from_perturbed_inputs_beats_nearest_rounding_on_the_error_computed_from_both_inputs()
    {
        var rng = new Random(21);
        const int k = 32, samples = 300;
        var x = CorrelatedInputs(rng, samples, k);
        // The inputs the quantized layer sees: x with an error the earlier layers made (a gain and a shift, plus noise).
        var xq = x.Select(v => (float)(1.05 * v + 0.02 + 0.01 * Gaussian(rng))).ToArray();
        var gqq = Gram(xq, samples, k);
        var cross = Cross(xq, x, samples, k);
        var gxx = Gram(x, samples, k);
        double nearestTotal = 0, learnedTotal = 0;
        for (int row = 0; row < 8; row++)
        {
            var w = RandomRow(rng, k);
            float s = (float)(w.Max(Math.Abs) / 7.0);
            var problem = RowProblem.Asymmetric(w, gqq, cross, gxx);
            var r = AdaRound.Row(w, s, FourBit, problem, new AdaRoundOptions());
            var nearest = w.Select(v => UniformQuantizer.Quantize(v, s, 0, FourBit)).ToArray();
            double en = OutputError(w, s, nearest, x, samples, xq), ea = OutputError(w, s, r.Codes, x, samples, xq);
            Assert.Equal(en, r.NearestError, en * 1e-3);
            Assert.Equal(ea, r.Error, en * 1e-3);
            Assert.True(ea <= en * (1 + 1e-5));
            nearestTotal += en;
            learnedTotal += ea;
        }
        Assert.True(learnedTotal < 0.8 * nearestTotal, $"learned {learnedTotal:G4} vs nearest {nearestTotal:G4}");
    }

    [Fact]
    public void On_small_rows_it_closes_most_of_the_gap_to_the_exhaustive_optimum()
    {
        var rng = new Random(5);
        const int k = 10, samples = 200;
        var x = CorrelatedInputs(rng, samples, k);
        var g = Gram(x, samples, k);
        double gapClosed = 0;
        int counted = 0;
        for (int row = 0; row < 10; row++)
        {
            var w = RandomRow(rng, k);
            float s = (float)(w.Max(Math.Abs) / 7.0);
            var floor = w.Select(v => (int)Math.Floor(v / (double)s)).ToArray();
            double best = double.PositiveInfinity;
            var q = new int[k];
            for (int mask = 0; mask < 1 << k; mask++)
            {
                for (int i = 0; i < k; i++) q[i] = Math.Clamp(floor[i] + ((mask >> i) & 1), FourBit.Min, FourBit.Max);
                best = Math.Min(best, OutputError(w, s, q, x, samples));
            }
            var r = AdaRound.Row(w, s, FourBit, g, new AdaRoundOptions());
            double learned = OutputError(w, s, r.Codes, x, samples);
            Assert.True(learned >= best * (1 - 1e-4), "below the exhaustive optimum: the error is miscomputed");
            if (r.NearestError - best > 1e-9 * r.NearestError)
            {
                gapClosed += (r.NearestError - learned) / (r.NearestError - best);
                counted++;
            }
        }
        Assert.True(counted >= 5, $"{counted} rows where nearest rounding is not already optimal");
        Assert.True(gapClosed / counted > 0.6, $"closes {gapClosed / counted:P0} of the gap on average");
    }

    [Fact]
    public void The_same_inputs_give_the_same_codes()
    {
        var rng = new Random(8);
        const int k = 30;
        var x = CorrelatedInputs(rng, 100, k);
        var g = Gram(x, 100, k);
        var w = RandomRow(rng, k);
        float s = (float)(w.Max(Math.Abs) / 7.0);
        var a = AdaRound.Row(w, s, FourBit, g, new AdaRoundOptions { Iterations = 200 });
        var b = AdaRound.Row(w, s, FourBit, g, new AdaRoundOptions { Iterations = 200 });
        Assert.Equal(a.Codes, b.Codes);
    }
}
