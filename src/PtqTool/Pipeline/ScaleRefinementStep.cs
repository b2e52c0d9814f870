using System.Diagnostics;
using PtqTool.Data;
using PtqTool.Evaluation;
using PtqTool.Onnx;
using PtqTool.Rewrite;
using PtqTool.Rewrite.Handlers;
using PtqTool.Scales;

namespace PtqTool.Pipeline;

/// <summary>What --refine output did: the loss on the model's output before and after, and what it cost.</summary>
/// <param name="Loss">kl (class scores) or relative_mse (anything else), see <see cref="OutputLossKind"/>.</param>
/// <param name="Groups">Scale groups searched (activations sharing one scale count once; fixed ranges are not searched).</param>
/// <param name="Changed">Groups whose scale moved.</param>
/// <param name="Work">Forward passes of the samples through the whole model the search cost (runs from a cached checkpoint count their share).</param>
/// <param name="BudgetReached">Whether <c>--refine auto</c> stopped at its budget before the search ended.</param>
public sealed record RefinementSummary(string Loss, int Samples, int Groups, int Changed, int Evaluations, int Passes, double Work, bool BudgetReached, double Before, double After, double Seconds)
{
    /// <summary>False when the refined scales were set aside: with output bias correction on both, each tensor's own
    /// scales gave the lower output loss (<see cref="OutputBiasCorrectionSummary.UnrefinedLoss"/>), and the model has those.</summary>
    public bool Kept { get; init; } = true;
}

/// <summary>
/// Output-aware scale refinement (after Nahshan et al. 2020, "Loss aware post-training quantization"): the per-tensor
/// choices are a start; each activation scale group is then searched in graph order for the multiplier that most lowers
/// the loss of the whole model's output against the FP32 output on calibration samples (<see cref="LogLineSearch"/>),
/// holding the others, in passes of shrinking steps. The quantized model is simulated exactly in one ONNX Runtime session
/// whose activation scales are inputs (<see cref="ScaleInputs"/>), so a choice costs one forward pass of the samples.
/// Each search keeps a group's scale unless it lowers the loss: the loss never rises.
/// </summary>
public static class ScaleRefinementStep
{
    public const int DefaultSamples = 64;
    /// <summary>The first pass's step ratio, then the next's: ±25 %, then ±10 %.</summary>
    public static readonly double[] Steps = [1.25, 1.1];
    /// <summary>A pass that lowers the loss by less than this fraction ends the search.</summary>
    public const double MinPassGain = 0.01;

    public static (Dictionary<string, QuantParams> Parameters, RefinementSummary? Summary) Apply(PreparedModel model, QuantizeRequest request,
        QuantizationOptions options, Dictionary<string, QuantParams> parameters, IReadOnlyDictionary<string, double[]>? means, FloatTensor? synthetic, ProgressReporter progress)
    {
        if (!request.RefinesScales(synthetic is not null)) return (parameters, null);
        var clock = Stopwatch.StartNew();
        var plan = model.Plan;
        var spec = options.ActivationSpec;
        var groups = SearchedGroups(model);
        if (groups.Count == 0) return (parameters, null);

        // The quantized model as the rewrite will make it, its activation scales as inputs.
        var sim = new OnnxGraph(model.Folded.Model.Clone(), model.Folded.BaseDirectory);
        var names = new Dictionary<string, ActivationScaleNames>(StringComparer.Ordinal);
        var biases = new List<BiasLink>();
        QdqRewriter.Apply(sim, PlanBuilder.Build(sim, model.Options), parameters, options, means, names, biases);
        ScaleInputs.LinkBiases(sim, names, biases);

        string output = model.OutputName;
        long budget = (long)request.MemoryBudgetMiB << 20, held = 0;
        var batches = new List<ModelFeed>();
        var references = new List<FloatTensor>();
        var runner = new RunnerOptions { Threads = request.Threads };
        using (var fp32 = OrtRunner.FromModel(model.Folded.Model, runner, "folded model"))
            // A model with a fixed batch size runs its samples in batches of that size (the scale inputs have none).
            foreach (var part in Parts(model, request, synthetic, request.RefineSamples ?? DefaultSamples, fp32.FixedBatch))
            {
                var reference = fp32.Run(part, [output])[output];
                // The samples, their FP32 outputs and one cached activation per sample are held for every pass: bounded
                // by --memory-budget, never by the data (the activation is counted at twice the input's size).
                long bytes = 4L * (reference.Data.Length + 3 * part.Tensors.Sum(t => (long)t.Data.Length));
                if (batches.Count > 0 && held + bytes > budget) break;
                held += bytes;
                batches.Add(part);
                references.Add(reference);
            }
        if (batches.Count == 0) return (parameters, null);
        int samples = batches.Sum(b => b.Batch);
        var kind = OutputLossKind(references[0]);

        using var simulation = new SuffixSimulation(sim, names, output, batches, runner);
        // Each group from the last checkpoint before the first node that reads its scales, searched in that order.
        var starts = groups.ToDictionary(g => g.Key, g => simulation.CheckpointBefore(ScaleInputNames(names, g.Members)), StringComparer.Ordinal);
        groups = [.. groups.OrderBy(g => starts[g.Key])];
        var members = groups.ToDictionary(g => g.Key, g => (IReadOnlyList<string>)g.Members, StringComparer.Ordinal);
        var factors = new Dictionary<string, double>(StringComparer.Ordinal);
        int evaluations = 0;
        double Loss(IReadOnlyDictionary<string, double> f)
        {
            evaluations++;
            return simulation.Loss(ScaleInputs.Feed(names, ActivationParameters.Rescaled(plan, parameters, members, f), spec), references, kind);
        }

        double limit = request.Refine == "output" ? double.PositiveInfinity : AutoBudget;
        double before = Loss(factors), current = before;
        int passes = 0;
        bool spent = false;
        progress.Start("refining scales", groups.Count * Steps.Length);
        foreach (double step in Steps)
        {
            double start = current;
            passes++;
            simulation.Restart();
            for (int gi = 0; gi < groups.Count && !spent; gi++)
            {
                var (key, list) = groups[gi];
                if (starts[key] >= 0)
                    simulation.AdvanceTo(starts[key], ScaleInputs.Feed(names, ActivationParameters.Rescaled(plan, parameters, members, factors), spec));
                double f0 = factors.GetValueOrDefault(key, 1);
                var now = parameters[list[0]] with { Scale = parameters[list[0]].Scale * f0 };
                double cap = Math.Min(2, ActivationParameters.LargestFactor(plan, list, now, spec));
                if (cap < 1) cap = 1;
                var outcome = LogLineSearch.Minimize(m => Loss(new Dictionary<string, double>(factors, StringComparer.Ordinal) { [key] = f0 * m }), current, step, 0.5, cap);
                if (outcome.Multiplier != 1)
                {
                    factors[key] = f0 * outcome.Multiplier;
                    current = outcome.Loss;
                }
                progress.Report((passes - 1) * groups.Count + gi + 1);
                // The default stops when its work reaches the budget; the scales found so far are kept.
                spent = simulation.Cost >= limit;
            }
            if (spent || start - current < MinPassGain * start) break;
        }
        progress.Finish();
        // The searched loss measured again on the whole graph; a choice no better than the start is dropped.
        simulation.Restart();
        double searched = current;
        current = Loss(factors);
        if (Environment.GetEnvironmentVariable("PTQ_TRACE_REFINE") == "1") progress.Message($"refine trace: searched {searched:G6}, whole graph {current:G6}");
        if (current >= before) { factors.Clear(); current = before; }
        var refined = ActivationParameters.Rescaled(plan, parameters, members, factors);
        int changed = factors.Count(f => f.Value != 1);
        string lossName = kind == Evaluation.OutputLossKind.KL ? "kl" : "relative_mse";
        var summary = new RefinementSummary(lossName, samples, groups.Count, changed, evaluations, passes, Math.Round(simulation.Cost, 2), spent, before, current, clock.Elapsed.TotalSeconds);
        progress.Message($"refine: output {(kind == Evaluation.OutputLossKind.KL ? "KL" : "relative MSE")} {before:G4} -> {current:G4} on {samples} calibration samples; {changed} of {groups.Count} activation scales moved "
            + $"({evaluations} runs, {summary.Work:0.#} full-model passes{(spent ? ", budget reached" : "")}, {summary.Seconds:0.0} s)");
        return (refined, summary);
    }

    /// <summary>The work <c>--refine auto</c> spends at most, in full-model forward passes of the refinement samples (<see cref="SuffixSimulation.Cost"/>).</summary>
    public const double AutoBudget = 48;

    private static Evaluation.OutputLossKind OutputLossKind(FloatTensor reference) => OutputLoss.For(reference.Shape);

    /// <summary>The scale inputs of a group's members (their scaled copies are read after them).</summary>
    private static IEnumerable<string> ScaleInputNames(IReadOnlyDictionary<string, ActivationScaleNames> names, IEnumerable<string> members) =>
        members.Where(names.ContainsKey).SelectMany(m => new[] { names[m].Scale, names[m].ClipMin, names[m].ClipMax }).OfType<string>();

    /// <summary>The scale groups a search can move, in graph order of their first tensor: not fixed ranges (Softmax's [0, 1]), not only scaled copies.</summary>
    public static List<(string Key, List<string> Members)> SearchedGroups(PreparedModel model)
    {
        var plan = model.Plan;
        var position = new Dictionary<string, int>(StringComparer.Ordinal);
        var order = model.Folded.TopologicalOrder();
        for (int i = 0; i < order.Count; i++)
            foreach (var o in order[i].Output) position[o] = i;
        return plan.Groups()
            .Where(g => !g.Value.Any(plan.FixedRanges.ContainsKey) && g.Value.Any(t => plan.IsQdq(t) && !plan.IsScaledCopy(t)))
            .Select(g => (g.Key, Members: g.Value.OrderBy(t => position.GetValueOrDefault(t, -1)).ThenBy(t => t, StringComparer.Ordinal).ToList()))
            .OrderBy(g => position.GetValueOrDefault(g.Members[0], -1)).ThenBy(g => g.Key, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Up to --refine-samples files spread over the calibration files (--calib within --limit), or the synthetic samples.</summary>
    internal static IEnumerable<ModelFeed> Samples(PreparedModel model, QuantizeRequest request, FloatTensor? synthetic, int? samples = null)
    {
        int count = samples ?? request.RefineSamples ?? DefaultSamples;
        if (request.CalibDir is null && synthetic is not null)
            return CalibrationStep.Batches(synthetic.Slice(0, Math.Min(synthetic.Batch, count)), request.Batch).Select(b => b.Input);
        var files = Subset.Spread(model.CalibrationSamples(request), count);
        return model.Reader(files, request.Batch, request.Strict).Read().Select(b => b.Input);
    }

    /// <summary>
    /// Up to <paramref name="count"/> calibration samples that <see cref="Parts"/> with <paramref name="refineSamples"/>
    /// does not take (the files it leaves out, within --limit, spread over the rest; for synthetic data the samples
    /// after the first <paramref name="refineSamples"/>), in the same pieces. None when it takes them all.
    /// </summary>
    internal static IEnumerable<ModelFeed> HeldOutParts(PreparedModel model, QuantizeRequest request, FloatTensor? synthetic, int refineSamples, int count, int fixedBatch)
    {
        IEnumerable<ModelFeed> reads;
        if (request.CalibDir is null && synthetic is not null)
        {
            int start = Math.Min(synthetic.Batch, refineSamples);
            reads = start >= synthetic.Batch ? [] : CalibrationStep.Batches(synthetic.Slice(start, Math.Min(synthetic.Batch - start, count)), request.Batch).Select(b => b.Input);
        }
        else
        {
            var files = model.CalibrationSamples(request);
            var taken = Subset.Spread(files, refineSamples).ToHashSet();
            var rest = files.Where(f => !taken.Contains(f)).ToList();
            reads = rest.Count == 0 ? [] : model.Reader(Subset.Spread(rest, count), request.Batch, request.Strict).Read().Select(b => b.Input);
        }
        return Take(reads, model, count, fixedBatch, int.MaxValue);
    }

    /// <summary>
    /// Up to <paramref name="wanted"/> samples of <see cref="Samples"/> (a tensor file may hold a batch of samples: this
    /// counts samples, not files), each batch in <see cref="Chunks"/> and with its inputs named (<see cref="WithNames"/>).
    /// </summary>
    internal static IEnumerable<ModelFeed> Parts(PreparedModel model, QuantizeRequest request, FloatTensor? synthetic, int wanted, int fixedBatch, int freeLimit = int.MaxValue) =>
        Take(Samples(model, request, synthetic, wanted), model, wanted, fixedBatch, freeLimit);

    /// <summary>The first <paramref name="wanted"/> samples of <paramref name="reads"/> in <see cref="Chunks"/>, named.</summary>
    private static IEnumerable<ModelFeed> Take(IEnumerable<ModelFeed> reads, PreparedModel model, int wanted, int fixedBatch, int freeLimit)
    {
        int taken = 0;
        foreach (var read in reads)
        {
            if (taken >= wanted) yield break;
            var batch = read.Batch > wanted - taken ? read.Slice(0, wanted - taken) : read;
            foreach (var part in Chunks(batch, fixedBatch, freeLimit))
            {
                taken += part.Batch;
                yield return WithNames(part, model);
            }
        }
    }

    /// <summary>
    /// The batch in pieces of the model's fixed batch size (a remainder that does not fill one is dropped), or, when the
    /// batch is free, in pieces of at most <paramref name="freeLimit"/> samples (the last one shorter).
    /// </summary>
    internal static IEnumerable<ModelFeed> Chunks(ModelFeed batch, int fixedBatch, int freeLimit = int.MaxValue)
    {
        int size = fixedBatch > 0 ? fixedBatch : freeLimit;
        if (batch.Batch == size || (fixedBatch <= 0 && batch.Batch <= size)) { yield return batch; yield break; }
        for (int start = 0; fixedBatch > 0 ? start + size <= batch.Batch : start < batch.Batch; start += size)
            yield return batch.Slice(start, Math.Min(size, batch.Batch - start));
    }

    /// <summary>The batch with every tensor named (a single input's tensor carries no name), so scale inputs can join it.</summary>
    internal static ModelFeed WithNames(ModelFeed batch, PreparedModel model) =>
        new(batch.Names.Select((n, i) => n ?? model.Inputs[i].Name).ToList(), batch.Tensors);
}
