using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>Tensors fetched together from one session, and the largest batch that keeps them under the budget.</summary>
public sealed record OutputGroup(IReadOnlyList<string> Tensors, int MaxBatch);

/// <summary>
/// Bounds the memory of runs that expose intermediate tensors (calibration, per-layer errors). ONNX Runtime keeps every
/// graph output alive for the whole run, fetched or not (measured: the PaddleOCR detector with 287 tensors exposed
/// takes 775 MiB for a batch of 4 where the plain model takes 235 MiB), so exposing all of a deep model's tensors costs
/// the sum of their sizes times the batch. The plan, from the tensors' sizes on one sample:
/// one session exposing everything when a batch of it fits the byte budget; the same session on sub-batches when one
/// sample fits; otherwise groups that each fit, each its own augmented session, run one after the other (every
/// batch passes once per group). Memory is then bounded by the budget and the model, whatever the depth, batch or data.
/// </summary>
public sealed class OutputGroups
{
    /// <summary>Default budget for the exposed tensors of one run.</summary>
    public const long DefaultBudgetBytes = 256L << 20;

    public IReadOnlyList<OutputGroup> Groups { get; }
    /// <summary>Whether each group has a session of its own (one pass over the data per group).</summary>
    public bool SeparateSessions { get; }

    private OutputGroups(IReadOnlyList<OutputGroup> groups, bool separate)
    {
        Groups = groups;
        SeparateSessions = separate;
    }

    /// <summary>A copy of <paramref name="model"/> with <paramref name="tensors"/> added as float graph outputs.</summary>
    public static ModelProto Augment(ModelProto model, IEnumerable<string> tensors)
    {
        var copy = model.Clone();
        var g = new OnnxGraph(copy);
        foreach (var t in tensors) g.AddOutput(t);
        return copy;
    }

    /// <summary>
    /// Measures each tensor's bytes per sample on <paramref name="probe"/> (a session exposing all of them; one sample,
    /// or the model's fixed batch) and plans the groups for batches of <paramref name="batch"/>.
    /// </summary>
    public static OutputGroups Plan(OrtRunner probe, ModelFeed sample, IReadOnlyList<string> tensors, int batch, long budgetBytes) =>
        Plan(SampleBytes(probe, sample, tensors), tensors, batch, budgetBytes, Math.Max(1, probe.FixedBatch));

    /// <summary>Each tensor's bytes per sample, measured on <paramref name="probe"/> (one sample, or the model's fixed batch).</summary>
    public static Dictionary<string, long> SampleBytes(OrtRunner probe, ModelFeed sample, IReadOnlyList<string> tensors)
    {
        var one = sample.Slice(0, Math.Min(sample.Batch, Math.Max(1, probe.FixedBatch)));
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        probe.Visit(one, tensors, (name, data, _) => sizes[name] = Math.Max(1, 4L * data.Length / one.Batch));
        return sizes;
    }

    /// <summary>The plan for batches of <paramref name="batch"/> from measured <see cref="SampleBytes"/>; pieces are multiples of <paramref name="granularity"/>.</summary>
    public static OutputGroups Plan(IReadOnlyDictionary<string, long> sizes, IReadOnlyList<string> tensors, int batch, long budgetBytes, int granularity)
    {
        long total = tensors.Sum(t => sizes.GetValueOrDefault(t, 1));
        if (total * batch <= budgetBytes) return new OutputGroups([new OutputGroup(tensors, batch)], false);
        if (total <= budgetBytes)
        {
            int fit = (int)Math.Clamp(budgetBytes / total, 1, batch);
            return new OutputGroups([new OutputGroup(tensors, Math.Max(granularity, fit / granularity * granularity))], false);
        }
        var groups = new List<OutputGroup>();
        var current = new List<string>();
        long used = 0;
        foreach (var t in tensors)
        {
            long size = sizes.GetValueOrDefault(t, 1);
            if (used + size > budgetBytes && current.Count > 0)
            {
                groups.Add(Group(current, used, batch, budgetBytes, granularity));
                current = [];
                used = 0;
            }
            current.Add(t);
            used += size;
        }
        if (current.Count > 0) groups.Add(Group(current, used, batch, budgetBytes, granularity));
        return new OutputGroups(groups, true);
    }

    private static OutputGroup Group(List<string> tensors, long bytesPerSample, int batch, long budget, int granularity)
    {
        int fit = (int)Math.Clamp(budget / Math.Max(1, bytesPerSample), 1, batch);
        return new OutputGroup(tensors, Math.Max(granularity, fit / granularity * granularity));
    }

    /// <summary>The batch in pieces of at most <paramref name="max"/> samples.</summary>
    public static IEnumerable<ModelFeed> Pieces(ModelFeed batch, int max)
    {
        if (batch.Batch <= max) { yield return batch; yield break; }
        for (int start = 0; start < batch.Batch; start += max) yield return batch.Slice(start, Math.Min(max, batch.Batch - start));
    }
}
