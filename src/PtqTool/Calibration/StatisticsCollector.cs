using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Scales;

namespace PtqTool.Calibration;

/// <summary>
/// Runs calibration batches through an augmented model (the observed tensors exposed as outputs) and streams each
/// batch into per-tensor histograms, dropping the batch. The exposed tensors stay within a byte budget
/// (<see cref="OutputGroups"/>): memory is bounded by the budget and the model, never by the number of samples, the
/// batch or the depth. Histograms merge exactly, so sub-batches and separate passes give the same statistics.
/// </summary>
public static class StatisticsCollector
{
    /// <param name="batches">The data; called once per pass (several passes only when the tensors of one sample exceed the budget).</param>
    /// <param name="channelTensors">Tensors whose per-channel means are also kept (inputs of weighted ops, for bias correction).</param>
    public static ActivationStatistics Collect(ModelProto model, IReadOnlyCollection<string> tensors, Func<int, IEnumerable<SampleBatch>> batches,
        string modelSha256, RunnerOptions? runnerOptions = null, IReadOnlyCollection<string>? channelTensors = null,
        long budgetBytes = OutputGroups.DefaultBudgetBytes, Action? release = null)
    {
        var names = tensors.Union(channelTensors ?? []).OrderBy(t => t, StringComparer.Ordinal).ToList();
        var stats = new ActivationStatistics(modelSha256);
        foreach (var t in tensors) stats.Tensors[t] = new Histogram();
        var channels = new HashSet<string>(channelTensors ?? [], StringComparer.Ordinal);
        if (names.Count == 0)
        {
            // Nothing to observe (a weight-only model: every MatMul as MatMulNBits): the samples are read and counted only.
            foreach (var batch in batches(0)) stats.Samples += batch.Input.Batch;
            return stats;
        }
        // Single-threaded runs, as many at once as there are threads (ParallelCollection): each binning its own outputs.
        int workers = Workers(runnerOptions?.Threads ?? 0);
        var options = (runnerOptions ?? new RunnerOptions()) with { Threads = 1 };
        var full = OrtRunner.FromModel(OutputGroups.Augment(model, names), options, "augmented calibration model");
        OutputGroups? plan = null;
        int runs = workers;
        long seen = 0;
        IEnumerable<ModelFeed> FirstPass()
        {
            foreach (var batch in batches(0))
            {
                if (plan is null)
                {
                    // Every run holds the outputs of one piece: each gets its share of the budget. When one sample's
                    // tensors exceed a share, fewer runs at once (each with more threads) may still fit them all in
                    // one session: one pass over the data instead of one per group of tensors.
                    var sizes = OutputGroups.SampleBytes(full, batch.Input, names);
                    int granularity = Math.Max(1, full.FixedBatch);
                    plan = OutputGroups.Plan(sizes, names, batch.Input.Batch, budgetBytes / workers, granularity);
                    for (int r = workers - 1; plan.SeparateSessions && r >= 1; r--)
                    {
                        var fewer = OutputGroups.Plan(sizes, names, batch.Input.Batch, budgetBytes / r, granularity);
                        if (!fewer.SeparateSessions) (plan, runs) = (fewer, r);
                    }
                }
                if (plan.SeparateSessions || runs < workers) yield break;
                seen += batch.Input.Batch;
                foreach (var piece in OutputGroups.Pieces(batch.Input, plan.Groups[0].MaxBatch)) yield return piece;
            }
        }
        IEnumerable<ModelFeed> GroupPass(int g, OutputGroup group)
        {
            foreach (var batch in batches(g))
            {
                if (g == 0) seen += batch.Input.Batch;
                foreach (var piece in OutputGroups.Pieces(batch.Input, group.MaxBatch)) yield return piece;
            }
        }
        try
        {
            ParallelCollection.Run(full, FirstPass(), names, channels, stats, workers);
            // A session per group (one group of every tensor when fewer runs at once fit them all), each run with the
            // threads the concurrent runs leave it, binning its outputs on as many.
            if (plan is not null && (plan.SeparateSessions || runs < workers))
            {
                full.Dispose();
                full = null!;
                seen = 0;
                int threadsPerRun = Math.Max(1, workers / runs);
                for (int g = 0; g < plan.Groups.Count; g++)
                {
                    var group = plan.Groups[g];
                    using (var runner = OrtRunner.FromModel(OutputGroups.Augment(model, group.Tensors), options with { Threads = threadsPerRun }, "augmented calibration model"))
                        ParallelCollection.Run(runner, GroupPass(g, group), group.Tensors, channels, stats, runs, threadsPerRun);
                    release?.Invoke();
                }
            }
            stats.Samples = seen;
            return stats;
        }
        finally
        {
            full?.Dispose();
        }
    }

    /// <summary>Concurrent runs: the threads asked for, else one per core (at most 8: past that the memory share per run gets small).</summary>
    public static int Workers(int threads) => threads > 0 ? threads : Math.Clamp(Environment.ProcessorCount, 1, 8);
}
