using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Scales;

namespace PtqTool.Calibration;

/// <summary>
/// Runs calibration batches through one augmented model (every observed tensor exposed as an output) and streams each
/// batch into per-tensor histograms, dropping the batch: memory depends on the batch size and the number of observed
/// tensors, never on the number of samples.
/// </summary>
public static class StatisticsCollector
{
    /// <param name="channelTensors">Tensors whose per-channel means are also kept (inputs of weighted ops, for bias correction).</param>
    public static ActivationStatistics Collect(ModelProto model, IReadOnlyCollection<string> tensors, IEnumerable<SampleBatch> batches,
        string modelSha256, RunnerOptions? runnerOptions = null, Action<int>? onSamples = null, IReadOnlyCollection<string>? channelTensors = null)
    {
        var augmented = model.Clone();
        var graph = new OnnxGraph(augmented);
        var names = tensors.Union(channelTensors ?? []).OrderBy(t => t, StringComparer.Ordinal).ToList();
        foreach (var t in names) graph.AddOutput(t);
        var stats = new ActivationStatistics(modelSha256);
        foreach (var t in tensors) stats.Tensors[t] = new Histogram();
        using var runner = OrtRunner.FromModel(augmented, runnerOptions, "augmented calibration model");
        var channels = new HashSet<string>(channelTensors ?? [], StringComparer.Ordinal);
        int seen = 0;
        foreach (var batch in batches)
        {
            runner.Visit(batch.Input, names, (t, data, shape) =>
            {
                if (stats.Tensors.TryGetValue(t, out var h)) h.Add(data);
                if (channels.Contains(t) && shape.Length >= 2)
                {
                    if (!stats.Channels.TryGetValue(t, out var c)) stats.Channels[t] = c = new ChannelMeans(shape[1]);
                    c.Add(data, shape);
                }
            });
            seen += batch.Input.Batch;
            stats.Samples = seen;
            onSamples?.Invoke(seen);
        }
        return stats;
    }
}
