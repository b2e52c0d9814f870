using PtqTool.Scales;

namespace PtqTool.Tests.Scales;

/// <summary>The mixed-precision knapsack against brute force over every assignment of small random instances.</summary>
public class BitAllocationTests
{
    private static List<LayerChoices> Instance(Random rng, int layers, int[] bits) =>
        Enumerable.Range(0, layers).Select(i =>
        {
            // Sensitivity falls with bits, as measured ones do, but with noise (and sometimes ties) so the order is not trivial.
            double baseline = rng.NextDouble() * 3;
            var omega = bits.Select(k => Math.Round(baseline * Math.Pow(2, -k / 2.0) + rng.NextDouble() * 0.05, 3)).ToList();
            return new LayerChoices($"l{i}", rng.Next(1, 40) * (rng.Next(2) == 0 ? 9 : 16), bits, omega);
        }).ToList();

    private static (double Sensitivity, long Size)? BruteForce(List<LayerChoices> layers, long budget)
    {
        int k = layers[0].Bits.Count;
        (double, long)? best = null;
        int total = (int)Math.Pow(k, layers.Count);
        for (int code = 0; code < total; code++)
        {
            long size = 0;
            double omega = 0;
            for (int i = 0, c = code; i < layers.Count; i++, c /= k)
            {
                size += layers[i].Size(c % k);
                omega += layers[i].Sensitivity[c % k];
            }
            if (size <= budget && (best is null || omega < best.Value.Item1 - 1e-12)) best = (omega, size);
        }
        return best;
    }

    [Theory]
    [InlineData(1, 4)]
    [InlineData(2, 5)]
    [InlineData(3, 6)]
    [InlineData(4, 7)]
    public void The_frontier_gives_the_brute_force_optimum_at_every_budget(int seed, int layers)
    {
        var rng = new Random(seed);
        int[] bits = [2, 4, 6, 8];
        var instance = Instance(rng, layers, bits);
        long min = instance.Sum(l => l.Size(0)), max = instance.Sum(l => l.Size(bits.Length - 1));
        var frontier = BitAllocation.Frontier(instance);
        for (int trial = 0; trial < 60; trial++)
        {
            long budget = min - 10 + (long)(rng.NextDouble() * (max - min + 20));
            var expected = BruteForce(instance, budget);
            var got = BitAllocation.Best(instance, budget);
            if (expected is null) { Assert.Null(got); continue; }
            Assert.NotNull(got);
            Assert.True(got!.Size <= budget, $"budget {budget}: size {got.Size}");
            Assert.Equal(expected.Value.Sensitivity, got.Sensitivity, 9);
            // The assignment really has the size and sensitivity it claims.
            Assert.Equal(got.Size, got.Choices.Select((c, i) => instance[i].Size(c)).Sum());
            Assert.Equal(got.Sensitivity, got.Choices.Select((c, i) => instance[i].Sensitivity[c]).Sum(), 9);
        }
        // A frontier: sizes rise and sensitivities fall strictly; its ends are all-lowest and the best at full size.
        for (int i = 1; i < frontier.Count; i++)
        {
            Assert.True(frontier[i].Size > frontier[i - 1].Size);
            Assert.True(frontier[i].Sensitivity < frontier[i - 1].Sensitivity);
        }
        Assert.Equal(min, frontier[0].Size);
        Assert.Equal(BruteForce(instance, max)!.Value.Sensitivity, frontier[^1].Sensitivity, 9);
    }

    [Fact]
    public void A_non_finite_sensitivity_is_refused_naming_the_layer()
    {
        var e = Assert.Throws<PtqException>(() => BitAllocation.Frontier([new LayerChoices("conv7", 10, [4, 8], [double.NaN, 0])]));
        Assert.Contains("conv7", e.Message);
    }
}
