using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using PtqTool.Evaluation;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Pipeline;

/// <summary>What --output-bias-correction did: Convs corrected, on how many samples, and the output loss before and after.</summary>
/// <param name="Passes">Depths of Convs corrected one after the other (one pass of the samples each).</param>
public sealed record OutputBiasCorrectionSummary(int Layers, int Samples, int Passes, string Loss, double Before, double After, bool Kept, double Seconds)
{
    /// <summary>Where refined scales were compared with each tensor's own (both bias-corrected), the output loss each
    /// model ended at; the lower one is the result. Null when there was no comparison.</summary>
    public double? RefinedLoss { get; init; }

    /// <inheritdoc cref="RefinedLoss"/>
    public double? UnrefinedLoss { get; init; }

    /// <summary>Where the two were compared: "held_out" (calibration samples neither was fitted on, see
    /// <see cref="HeldOutSamples"/>) or "fitted" (too few left over: the samples both were corrected on, where
    /// <see cref="RefinedLoss"/> and <see cref="UnrefinedLoss"/> decide). Null when there was no comparison.</summary>
    public string? ComparedOn { get; init; }

    /// <summary>Held-out samples of the comparison, and each candidate's output loss on them (null unless "held_out").</summary>
    public int? HeldOutSamples { get; init; }

    /// <inheritdoc cref="HeldOutSamples"/>
    public double? RefinedHeldOutLoss { get; init; }

    /// <inheritdoc cref="HeldOutSamples"/>
    public double? UnrefinedHeldOutLoss { get; init; }

    /// <summary>The output loss of the model as it leaves this step.</summary>
    public double Final => Kept ? After : Before;
}

/// <summary>
/// Empirical bias correction on the quantized model (after Nagel et al. 2019, "Data-Free Quantization", section on
/// bias correction; measured, as AIMET's empirical variant does, rather than derived from BatchNormalization): the
/// per-channel mean of every Conv's output in the QDQ model is compared with the FP32 model's on calibration samples,
/// and each Conv's int32 bias codes are moved by the difference (in steps of the bias scale). Unlike the weight-only
/// correction (<see cref="Rewrite.BiasCorrection"/>), this also removes the systematic error that activation rounding
/// and clipping upstream leave, which matters where inputs are nearly constant over large areas (a text page's
/// background). Convs are corrected in order of depth, each after every Conv upstream of it, since an upstream
/// correction moves the means downstream (one pass of the samples per depth). Means are taken in the graph
/// (ReduceMean over every axis but the channel), so only [C] vectors leave ONNX Runtime, and a pass for one depth runs
/// only the part of the graph those Convs depend on (half the model on average). The model's output loss
/// against FP32 (KL for class scores, relative MSE otherwise) is measured before and after; corrections that do not
/// lower it are dropped.
/// </summary>
public static class OutputBiasCorrectionStep
{
    /// <param name="Reference">The FP32 model's tensor of the same values: the Conv's output, or, where the rewrite folded a
    /// Relu/Clip into the quantizer after it (the Conv then produces the activation's name, unclipped), the Conv output before it.</param>
    private sealed record Target(NodeProto Conv, string Output, string Reference, string Codes, float[] Scales, int Rank);

    /// <summary>
    /// What every correction of one run compares with: the calibration samples, the FP32 outputs on them and the FP32
    /// per-channel mean of each corrected Conv's output, by the Conv output's name. Quantized models of one plan (the
    /// refined scales and each tensor's own) share it, so the samples are read and run through FP32 once.
    /// </summary>
    internal sealed record FloatReference(OnnxGraph Graph, List<ModelFeed> Batches, List<Onnx.FloatTensor> Outputs, Dictionary<string, double[]> Means, int Samples, double Seconds)
    {
        public OutputLossKind Kind => OutputLoss.For(Outputs[0].Shape);
    }

    /// <summary>The FP32 side of the correction for the Convs of <paramref name="quantized"/>; null when it has none to
    /// correct or no sample could be read.</summary>
    /// <param name="fp32">The folded float model the rewrite started from (same tensor names).</param>
    internal static FloatReference? Reference(ModelProto fp32, ModelProto quantized, PreparedModel model, QuantizeRequest request, Onnx.FloatTensor? synthetic)
    {
        var clock = Stopwatch.StartNew();
        var reference = new OnnxGraph(fp32);
        var targets = Targets(new OnnxGraph(quantized), reference);
        if (targets.Count == 0) return null;
        var runner = new RunnerOptions { Threads = request.Threads };
        var batches = new List<ModelFeed>();
        var references = new List<Onnx.FloatTensor>();
        var fpMeans = targets.ToDictionary(t => t.Output, t => new double[t.Scales.Length], StringComparer.Ordinal);
        string output = model.OutputName;
        int wanted = request.RefineSamples ?? ScaleRefinementStep.DefaultSamples, samples = 0;
        long budget = (long)request.MemoryBudgetMiB << 20, held = 0;
        using (var session = OrtRunner.FromModel(WithMeans(fp32, targets, fp32: true), runner, "FP32 mean model"))
            foreach (var part in ScaleRefinementStep.Parts(model, request, synthetic, wanted, session.FixedBatch))
            {
                if (held > budget) break;
                var result = session.Run(part, [output, .. targets.Select(t => MeanName(t.Output))]);
                Accumulate(fpMeans, targets, result, part.Batch);
                batches.Add(part);
                references.Add(result[output]);
                samples += part.Batch;
                // The samples and their FP32 outputs are held for every pass: bounded by --memory-budget.
                held += 4L * (result[output].Data.Length + part.Tensors.Sum(t => (long)t.Data.Length));
            }
        if (samples == 0) return null;
        foreach (var m in fpMeans.Values) for (int c = 0; c < m.Length; c++) m[c] /= samples;
        return new FloatReference(reference, batches, references, fpMeans, samples, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Corrects the biases of <paramref name="quantized"/> in place against <paramref name="floatReference"/>.</summary>
    /// <param name="label">What the progress line calls this run.</param>
    internal static OutputBiasCorrectionSummary? Apply(FloatReference floatReference, ModelProto quantized, PreparedModel model, QuantizeRequest request, ProgressReporter progress,
        string label = "output bias correction")
    {
        var clock = Stopwatch.StartNew();
        var graph = new OnnxGraph(quantized);
        var targets = Targets(graph, floatReference.Graph);
        if (targets.Count == 0) return null;
        if (targets.FirstOrDefault(t => !floatReference.Means.ContainsKey(t.Output)) is { } missing)
            throw new InvalidOperationException($"the FP32 reference has no mean of '{missing.Output}': it was made for another plan");
        var runner = new RunnerOptions { Threads = request.Threads };
        var (batches, references, fpMeans, samples) = (floatReference.Batches, floatReference.Outputs, floatReference.Means, floatReference.Samples);
        string output = model.OutputName;
        var kind = floatReference.Kind;
        var original = targets.ToDictionary(t => t.Codes, t => TensorData.ToInt64s(graph.Initializer(t.Codes)!).Select(v => (int)v).ToArray(), StringComparer.Ordinal);

        // In order of depth: a Conv is corrected once every corrected Conv upstream of it has its final bias, so its
        // measured error is what is left after theirs (one pass per depth, Convs of one depth together).
        var levels = Levels(graph, targets);
        progress.Start(label, levels.Count + 1);
        double before = double.NaN;
        for (int level = 0; level < levels.Count; level++)
        {
            var (loss, means) = Measure(quantized, levels[level], batches, references, output, kind, runner, samples, withLoss: level == 0);
            if (level == 0) before = loss;
            progress.Report(level + 1);
            foreach (var t in levels[level])
            {
                var codes = TensorData.ToInt64s(graph.Initializer(t.Codes)!).Select(v => (int)v).ToArray();
                var q = means[t.Output];
                var f = fpMeans[t.Output];
                for (int c = 0; c < codes.Length; c++)
                    codes[c] = (int)Math.Clamp(codes[c] - Math.Round((q[c] - f[c]) / t.Scales[t.Scales.Length == 1 ? 0 : c]), int.MinValue, int.MaxValue);
                graph.ReplaceInitializer(Int32s(t.Codes, codes));
            }
        }
        double after = Measure(quantized, [], batches, references, output, kind, runner, samples, withLoss: true).Loss;
        progress.Finish();
        bool kept = after < before;
        if (!kept)
            foreach (var (name, codes) in original) graph.ReplaceInitializer(Int32s(name, codes));
        return new OutputBiasCorrectionSummary(targets.Count, samples, levels.Count, kind == OutputLossKind.KL ? "kl" : "relative_mse", before, after, kept,
            floatReference.Seconds + clock.Elapsed.TotalSeconds);
    }

    /// <summary>The targets by depth: how many targets lie on the longest path from the inputs to each (0 = none above it).</summary>
    private static List<List<Target>> Levels(OnnxGraph graph, List<Target> targets)
    {
        var byNode = targets.ToDictionary(t => t.Conv, t => t);
        var depth = new Dictionary<string, int>(StringComparer.Ordinal);
        var levels = new List<List<Target>>();
        foreach (var node in graph.TopologicalOrder())
        {
            int d = node.Input.Select(i => depth.GetValueOrDefault(i)).DefaultIfEmpty(0).Max();
            if (byNode.TryGetValue(node, out var t))
            {
                while (levels.Count <= d) levels.Add([]);
                levels[d].Add(t);
                d++;
            }
            foreach (var o in node.Output) depth[o] = d;
        }
        return levels;
    }

    /// <summary>Convs of the QDQ model whose bias is an int32 DequantizeLinear and whose output the FP32 model has.</summary>
    private static List<Target> Targets(OnnxGraph graph, OnnxGraph reference)
    {
        var targets = new List<Target>();
        foreach (var conv in graph.Graph.Node.Where(n => n.OpType == "Conv" && n.Input.Count > 2 && n.Input[2].Length > 0))
        {
            if (graph.Producer(conv.Input[2]) is not { OpType: "DequantizeLinear" } dq) continue;
            if (graph.Initializer(dq.Input[0]) is not { DataType: ElementType.Int32 } codes || graph.Initializer(dq.Input[1]) is not { } scale) continue;
            if (graph.Consumers(dq.Input[0]).Count != 1) continue;
            string? fp32Name = reference.Producer(conv.Output[0]) switch
            {
                { OpType: "Conv" } => conv.Output[0],
                { OpType: "Relu" or "Clip" } act when reference.Producer(act.Input[0]) is { OpType: "Conv" } => act.Input[0],
                _ => null,
            };
            if (fp32Name is null) continue;
            var w = graph.Producer(conv.Input[1]) is { OpType: "DequantizeLinear" } wdq ? graph.Initializer(wdq.Input[0]) : graph.Initializer(conv.Input[1]);
            int rank = w?.Dims.Count ?? 4;
            targets.Add(new Target(conv, conv.Output[0], fp32Name, codes.Name, TensorData.ToFloats(scale), rank));
        }
        return targets;
    }

    private static string MeanName(string tensor) => "ptq_channel_mean_" + tensor;

    /// <summary>
    /// A copy with ReduceMean(t, every axis but 1) exposed for each target (axes as an input from opset 18). Every other
    /// consumer of t reads t + 0·mean instead (exact for finite means), so ONNX Runtime must take the mean before the
    /// graph moves on: a mean that hung off the graph as a leaf would be scheduled after the whole chain it branches
    /// from, holding every target's full output alive until the end (peak memory growing with depth).
    /// </summary>
    private static ModelProto WithMeans(ModelProto model, List<Target> targets, bool fp32 = false)
    {
        var copy = new OnnxGraph(model.Clone());
        bool axesInput = copy.OpsetVersion() >= 18;
        string zero = copy.UniqueName("ptq_zero");
        copy.AddInitializer(TensorData.Scalar(zero, 0f));
        foreach (var t in targets)
        {
            string source = fp32 ? t.Reference : t.Output, mean = MeanName(t.Output);
            long[] axes = [0, .. Enumerable.Range(2, t.Rank - 2).Select(a => (long)a)];
            var reduce = NodeAttributes.Node("ReduceMean", copy.UniqueName("ptq_channel_mean"), [source], [mean], NodeAttributes.Int("keepdims", 1));
            if (axesInput)
            {
                string name = copy.UniqueName("ptq_channel_mean_axes");
                copy.AddInitializer(TensorData.FromInt64(name, [axes.Length], axes));
                reduce.Input.Add(name);
            }
            else reduce.Attribute.Add(NodeAttributes.Ints("axes", axes));
            var consumers = copy.Consumers(source).ToList();
            copy.AddNode(reduce);
            copy.AddOutput(mean);
            if (copy.IsGraphOutput(source) || consumers.Count == 0) continue;
            string zeros = copy.UniqueName("ptq_mean_zeros"), after = copy.UniqueName("ptq_after_mean");
            copy.AddNode(NodeAttributes.Node("Mul", copy.UniqueName("ptq_mean_zeros"), [mean, zero], [zeros]));
            copy.AddNode(NodeAttributes.Node("Add", copy.UniqueName("ptq_after_mean"), [source, zeros], [after]));
            foreach (var n in consumers)
                for (int i = 0; i < n.Input.Count; i++) if (n.Input[i] == source) n.Input[i] = after;
        }
        copy.SortNodes();
        return copy.Model;
    }

    private static void Accumulate(Dictionary<string, double[]> sums, List<Target> targets, IReadOnlyDictionary<string, Onnx.FloatTensor> result, int batch)
    {
        foreach (var t in targets)
        {
            var m = result[MeanName(t.Output)].Data;
            var s = sums[t.Output];
            for (int c = 0; c < s.Length && c < m.Length; c++) s[c] += m[c] * (double)batch;
        }
    }

    /// <summary>
    /// The quantized model's per-channel Conv output means on the samples, and its output loss where
    /// <paramref name="withLoss"/>, run with graph optimizations off (exact QDQ). Without the loss only the nodes the
    /// means depend on are run: a pass for Convs near the input costs a fraction of the model.
    /// </summary>
    private static (double Loss, Dictionary<string, double[]> Means) Measure(ModelProto quantized, List<Target> targets, List<ModelFeed> batches,
        List<Onnx.FloatTensor> references, string output, OutputLossKind kind, RunnerOptions runner, int samples, bool withLoss)
    {
        var means = targets.ToDictionary(t => t.Output, t => new double[t.Scales.Length], StringComparer.Ordinal);
        var loss = new OutputLoss(kind);
        var model = WithMeans(quantized, targets);
        if (!withLoss) model = Ancestors(model, [.. targets.Select(t => MeanName(t.Output))]);
        using var session = OrtRunner.FromModel(model, runner with { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL }, "quantized mean model");
        string[] fetch = [.. withLoss ? [output] : Array.Empty<string>(), .. targets.Select(t => MeanName(t.Output))];
        for (int i = 0; i < batches.Count; i++)
        {
            var result = session.Run(batches[i], fetch);
            if (withLoss) loss.Add(references[i], result[output]);
            Accumulate(means, targets, result, batches[i].Batch);
        }
        foreach (var m in means.Values) for (int c = 0; c < m.Length; c++) m[c] /= samples;
        return (withLoss ? loss.Value : double.NaN, means);
    }

    /// <summary>The model cut down to computing <paramref name="outputs"/>: the nodes they depend on and the initializers
    /// those read (every data input kept, so the same feeds fit).</summary>
    private static ModelProto Ancestors(ModelProto model, IReadOnlyList<string> outputs)
    {
        var graph = new OnnxGraph(model);
        var needed = new HashSet<NodeProto>();
        var stack = new Stack<string>(outputs);
        while (stack.Count > 0)
            if (graph.Producer(stack.Pop()) is { } p && needed.Add(p))
                foreach (var i in p.Input) stack.Push(i);
        var read = needed.SelectMany(n => n.Input).ToHashSet(StringComparer.Ordinal);
        var kept = graph.Graph.Node.Where(needed.Contains).ToList();
        var initializers = graph.Graph.Initializer.Where(t => read.Contains(t.Name)).ToList();
        var dropped = graph.Graph.Initializer.Where(t => !read.Contains(t.Name)).Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        // Older models list initializers among the graph inputs too; a dropped one must go from there as well.
        var inputs = graph.Graph.Input.Where(i => !dropped.Contains(i.Name)).ToList();
        graph.Graph.Input.Clear();
        graph.Graph.Input.AddRange(inputs);
        var result = graph.Graph.Output.Where(o => outputs.Contains(o.Name)).ToList();
        graph.Graph.Node.Clear();
        graph.Graph.Node.AddRange(kept);
        graph.Graph.Initializer.Clear();
        graph.Graph.Initializer.AddRange(initializers);
        graph.Graph.Output.Clear();
        graph.Graph.Output.AddRange(result);
        return model;
    }

    private static TensorProto Int32s(string name, int[] values)
    {
        var t = new TensorProto { Name = name, DataType = ElementType.Int32 };
        t.Dims.Add(values.Length);
        t.Int32Data.AddRange(values);
        return t;
    }
}
