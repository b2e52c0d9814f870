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
        // Runs overlap with histogram work on a worker: a spinning intra-op thread would only take a core from it.
        var options = (runnerOptions ?? new RunnerOptions()) with { Spinning = false };
        void Observe(string t, ReadOnlySpan<float> data, int[] shape)
        {
            if (stats.Tensors.TryGetValue(t, out var h)) h.Add(data);
            if (channels.Contains(t) && shape.Length >= 2)
            {
                if (!stats.Channels.TryGetValue(t, out var c)) stats.Channels[t] = c = new ChannelMeans(shape[1]);
                c.Add(data, shape);
            }
        }

        var overlap = new Overlap(Observe);
        var full = OrtRunner.FromModel(OutputGroups.Augment(model, names), options, "augmented calibration model");
        OutputGroups? plan = null;
        try
        {
            long seen = 0;
            foreach (var batch in batches(0))
            {
                plan ??= OutputGroups.Plan(full, batch.Input, names, batch.Input.Batch, budgetBytes / 2);
                if (plan.SeparateSessions) break;
                foreach (var piece in OutputGroups.Pieces(batch.Input, plan.Groups[0].MaxBatch)) overlap.Run(full, piece, names);
                seen += batch.Input.Batch;
            }
            overlap.Finish();
            if (plan is { SeparateSessions: true })
            {
                full.Dispose();
                full = null!;
                seen = 0;
                for (int g = 0; g < plan.Groups.Count; g++)
                {
                    var group = plan.Groups[g];
                    using (var runner = OrtRunner.FromModel(OutputGroups.Augment(model, group.Tensors), options, "augmented calibration model"))
                    {
                        foreach (var batch in batches(g))
                        {
                            foreach (var piece in OutputGroups.Pieces(batch.Input, group.MaxBatch)) overlap.Run(runner, piece, group.Tensors);
                            if (g == 0) seen += batch.Input.Batch;
                        }
                        overlap.Finish();
                    }
                    release?.Invoke();
                }
            }
            stats.Samples = seen;
            return stats;
        }
        finally
        {
            overlap.Abandon();
            full?.Dispose();
        }
    }

    /// <summary>
    /// Bins batch k on a worker while ONNX Runtime runs batch k + 1: at most two batches of outputs are alive (the plan
    /// takes half the budget for each), and batches are binned one at a time, in order.
    /// </summary>
    private sealed class Overlap(Action<string, ReadOnlySpan<float>, int[]> observe)
    {
        private Task? _binning;

        public void Run(OrtRunner runner, FloatTensor piece, IReadOnlyList<string> tensors)
        {
            var held = runner.RunHeld(piece, tensors);
            try { Finish(); }
            catch { held.Dispose(); throw; }
            _binning = Task.Run(() => { using (held) held.Visit(observe); });
        }

        /// <summary>Waits for the batch being binned (rethrowing what it threw).</summary>
        public void Finish()
        {
            var t = _binning;
            _binning = null;
            t?.GetAwaiter().GetResult();
        }

        /// <summary>Waits for the batch being binned, ignoring its failure (an exception is already on its way).</summary>
        public void Abandon()
        {
            try { _binning?.Wait(); } catch (AggregateException) { }
            _binning = null;
        }
    }
}
