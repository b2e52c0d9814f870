using PtqTool.Calibration;
using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Tests.Evaluation;

namespace PtqTool.Tests.Calibration;

/// <summary>
/// The memory budget changes how calibration fetches tensors (whole batches, sub-batches, separate sessions per group
/// of tensors, fewer runs at once with each run's tensors binned on several threads), and the number of concurrent
/// runs never what it computes: every plan, on one thread or several, gives bin-for-bin the statistics of one run per
/// sample, and per-channel sums equal to the last bit.
/// </summary>
public class StatisticsPlanTests
{
    [Theory]
    [InlineData(64L << 20, "whole batches", 1)]
    [InlineData(2L << 20, "sub-batches", 1)]
    [InlineData(100L << 10, "separate sessions", 1)]
    [InlineData(64L << 20, "whole batches", 3)]
    [InlineData(2L << 20, "sub-batches", 3)]
    [InlineData(100L << 10, "separate sessions", 3)]
    [InlineData(700L << 10, "fewer runs at once", 3)]
    public void Every_memory_plan_gives_the_statistics_of_one_sample_at_a_time(long budget, string plan, int threads)
    {
        string dir = Repo.TempDir();
        var model = OnnxModelFile.Load(DeepModels.Write(dir, 6));
        var tensors = Enumerable.Range(0, 6).Select(l => $"c{l}").Concat(Enumerable.Range(0, 5).Select(l => $"r{l}")).ToList();
        const int count = 16;
        var rng = new Random(3);
        int per = DeepModels.Channels * DeepModels.Size * DeepModels.Size;
        var values = Enumerable.Range(0, count * per).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var input = new FloatTensor(values, [count, DeepModels.Channels, DeepModels.Size, DeepModels.Size]);
        IEnumerable<SampleBatch> Batches(int _) { yield return new SampleBatch(input, new int[count], new string[count]); }

        using var runner = OrtRunner.FromModel(OutputGroups.Augment(model, tensors));
        // The budget really selects the plan named (11 tensors × 32 KiB per sample = 352 KiB; a batch of 16 is 5.5 MiB);
        // each of the concurrent runs gets its share of it.
        var chosen = OutputGroups.Plan(runner, input, tensors, count, budget / threads);
        Assert.Equal(plan is "separate sessions" or "fewer runs at once", chosen.SeparateSessions);
        // Fewer runs at once: a sample's tensors exceed a third of the budget but fit it whole, so one run at a time
        // (binning its tensors on three threads) fetches them all in one session.
        Assert.Equal(plan == "fewer runs at once", chosen.SeparateSessions && !OutputGroups.Plan(runner, input, tensors, count, budget).SeparateSessions);
        Assert.Equal(plan == "whole batches", chosen.Groups[0].MaxBatch == count);

        string[] channelTensors = ["c1", "r3"];
        var stats = StatisticsCollector.Collect(model, tensors, Batches, "sha", new RunnerOptions { Threads = threads }, channelTensors, budget);

        // The reference: each sample alone through an unbudgeted session, each tensor's histogram built sample by sample.
        var reference = tensors.ToDictionary(t => t, _ => new PtqTool.Scales.Histogram());
        var sums = channelTensors.ToDictionary(t => t, _ => new ChannelMeans(DeepModels.Channels));
        for (int i = 0; i < count; i++)
            foreach (var (name, t) in runner.Run(input.Slice(i, 1), tensors))
            {
                reference[name].Add(t.Data);
                if (sums.TryGetValue(name, out var c)) c.Add(t.Data, t.Shape);
            }
        foreach (var t in channelTensors)
        {
            Assert.Equal(sums[t].Count, stats.Channels[t].Count);
            Assert.Equal(sums[t].Sums, stats.Channels[t].Sums);
        }
        Assert.Equal(count, stats.Samples);
        foreach (var t in tensors)
        {
            var got = stats.Tensors[t];
            Assert.True(reference[t].Exponent == got.Exponent, $"{plan}, {t}: exponent {got.Exponent} vs {reference[t].Exponent}");
            Assert.Equal(reference[t].Count, got.Count);
            Assert.Equal(reference[t].Min, got.Min);
            Assert.Equal(reference[t].Max, got.Max);
            Assert.True(reference[t].Counts.SequenceEqual(got.Counts), $"{plan}, {t}: bin counts differ");
        }
    }
}
