using PtqTool.Evaluation;

namespace PtqTool.Tests.Evaluation;

public class LatencyTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(30)]
    public void Median_has_as_many_values_below_it_as_above(int count)
    {
        var rng = new Random(count);
        var values = Enumerable.Range(0, count).Select(_ => rng.NextDouble() * 100).ToArray();
        double median = Latency.Median(values);
        Assert.Equal(values.Count(v => v < median), values.Count(v => v > median));
        // Even counts: the midpoint of the two middle values, which are the nearest values on either side.
        if (count % 2 == 0)
            Assert.Equal((values.Where(v => v < median).Max() + values.Where(v => v > median).Min()) / 2, median, 12);
        else
            Assert.Contains(median, values);
    }

    [Fact]
    public void Interleaved_timing_alternates_blocks_and_leaves_out_the_other_models_spin_window()
    {
        // Two fake models: a call within 25 ms of the other model's last call takes 10 ms (ONNX Runtime's idle threads of
        // the other session still spin and slow it); otherwise a call is instant.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var lastEnd = new double[2];
        var order = new List<int>();
        Action Model(int k) => () =>
        {
            if (lastEnd[1 - k] > 0 && clock.Elapsed.TotalMilliseconds < lastEnd[1 - k] + 25) Thread.Sleep(10);
            order.Add(k);
            lastEnd[k] = clock.Elapsed.TotalMilliseconds;
        };
        var times = Latency.Interleaved([Model(0), Model(1)], warmup: 2, runs: 12, block: 4, settleMs: 40);
        Assert.All(times, t => Assert.Equal(12, t.Length));
        // No timed run fell in the other model's window (one slow run allowed for a hiccup of the machine).
        Assert.All(times, t => Assert.True(t.Count(ms => ms >= 8) <= 1, $"{t.Count(ms => ms >= 8)} of 12 timed runs took the other model's window"));
        // Calls come in contiguous groups: the warm-ups of each model, then 3 blocks per model, alternating.
        var groups = new List<(int Model, int Calls)>();
        foreach (int k in order)
            if (groups.Count > 0 && groups[^1].Model == k) groups[^1] = (k, groups[^1].Calls + 1);
            else groups.Add((k, 1));
        Assert.Equal([0, 1, 0, 1, 0, 1, 0, 1], groups.Select(g => g.Model));
        Assert.Equal([2, 2], groups.Take(2).Select(g => g.Calls));
        Assert.All(groups.Skip(2), g => Assert.True(g.Calls >= 4 + 1, $"{g.Calls} calls in a block: 4 timed and at least one untimed"));
    }
}
