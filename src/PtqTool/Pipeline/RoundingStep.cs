using System.Diagnostics;
using PtqTool.Kernels;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;
using PtqTool.Rounding;
using PtqTool.Scales;

namespace PtqTool.Pipeline;

/// <summary>
/// `--rounding adaround`: after the rewrite has chosen every scale and written nearest-rounded codes, each weighted
/// layer in graph order gets learned rounding (<see cref="AdaRound"/>) against the inputs it sees in the quantized model
/// so far: the layers before it already carry their learned codes and every activation is quantized, as in the paper.
/// Only the integer codes change (scales, zero points and biases stay), so the model's form and size are the same.
/// </summary>
public static class RoundingStep
{
    /// <summary>Samples the layers' inputs are collected on by default (--rounding-samples).</summary>
    public const int DefaultSamples = 256;
    /// <summary>The same for --rounding brecq: a block has many more rounding choices than a layer and learns a few hundred samples by heart (docs/rounding.md; BRECQ's paper uses 1,024).</summary>
    public const int DefaultBlockSamples = 1024;

    /// <param name="NearestError">Σ_rows ΔᵀGΔ with nearest rounding, per sample.</param>
    /// <param name="Error">The same after learned rounding.</param>
    /// <param name="Changed">Codes that differ from nearest rounding's.</param>
    /// <param name="Block">With --rounding brecq, the block the layer was learned in (its errors are then the block's); null when learned alone.</param>
    /// <param name="CheckLoss">With --rounding-check, the model output loss on the check samples with this layer's learned codes (and the choices before it).</param>
    /// <param name="Reverted">The check found that loss higher than with the layer's nearest codes, which the model keeps.</param>
    public sealed record Layer(string Weight, string Op, int Rows, int K, double NearestError, double Error, long Changed, long Weights, double Seconds, int RestoredPairs, int? Block = null,
        double? CheckLoss = null, bool Reverted = false)
    {
        /// <summary>The layer's error with the codes the model keeps.</summary>
        public double KeptError => Reverted ? NearestError : Error;
    }

    /// <summary>What --rounding-check measured: the model output loss (kl or relative_mse) on its samples.</summary>
    /// <param name="ComparedOn">held_out (calibration samples the rounding was not fitted on) or fitted (too few were left over).</param>
    /// <param name="NearestLoss">Every layer nearest.</param>
    /// <param name="CheckedLoss">After the pass that reverts each layer whose learned codes raise the loss beyond chance.</param>
    /// <param name="Kept">checked, or nearest where the checked model ends above nearest rounding's loss.</param>
    /// <param name="FinalLoss">The kept model's.</param>
    /// <param name="Reverted">Layers the kept model has at nearest codes.</param>
    public sealed record CheckSummary(string Loss, int Samples, string ComparedOn, double NearestLoss, double CheckedLoss, string Kept, double FinalLoss, int Reverted);

    /// <param name="Target">What the layer output is fitted to: fp32 (the FP32 layer's output) or quantized (W x̃ on the quantized inputs).</param>
    /// <param name="Blocks">With --rounding brecq, every block of the partition (those learned layer by layer say why).</param>
    /// <param name="OutputCheck">With --rounding brecq, the model output error of the block codes vs per-layer AdaRound's, and which were kept.</param>
    public sealed record Result(string Method, string Target, int Iterations, int Samples, IReadOnlyList<Layer> Layers, IReadOnlyList<string> Kept, double Seconds,
        IReadOnlyList<BlockReconstructionStep.BlockOutcome>? Blocks = null, BlockReconstructionStep.OutputCheck? OutputCheck = null, CheckSummary? Check = null)
    {
        /// <summary>Σ of the errors after learned rounding over Σ of nearest rounding's, each block's counted once.</summary>
        public double ErrorRatio
        {
            get
            {
                var units = Layers.GroupBy(l => l.Block is int b ? $"block {b}" : "layer " + l.Weight).Select(g => g.First()).ToList();
                return units.Sum(l => l.KeptError) / Math.Max(1e-30, units.Sum(l => l.NearestError));
            }
        }
    }

    /// <summary>One planned weight with its float values and its node's data input, taken before the rewrite replaces them.</summary>
    public sealed record Weight(WeightUse Use, string Name, float[] Values, int[] Shape, string Input);

    /// <summary>The float weights in graph order, and the FP32 (folded) model whose layer inputs are the reconstruction's reference.</summary>
    public sealed record Inputs(IReadOnlyList<Weight> Weights, ModelProto Reference);

    /// <summary>What learned rounding and multipoint weights need from the model before the rewrite; null when neither is asked for.</summary>
    public static Inputs? Capture(PreparedModel model, QuantizationOptions options)
    {
        if (options.Rounding == "nearest" && options.Multipoint <= 0) return null;
        var graph = model.Folded;
        var position = new Dictionary<NodeProto, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < graph.Graph.Node.Count; i++) position[graph.Graph.Node[i]] = i;
        var weights = model.Plan.Weights
            .GroupBy(u => u.Node.Input[u.InputIndex], StringComparer.Ordinal).Select(g => g.First())
            .OrderBy(u => position[u.Node])
            .Select(u =>
            {
                string name = u.Node.Input[u.InputIndex];
                return new Weight(u, name, graph.InitializerFloats(name), TensorData.Shape(graph.Initializer(name)!), u.Node.Input[0]);
            })
            .ToList();
        return new Inputs(weights, graph.Model.Clone());
    }

    /// <summary>Replaces the codes of every captured weight in <paramref name="quantized"/> (the rewritten graph) by learned ones.</summary>
    /// <param name="afterLayer">Called with each layer's Grams once its codes are learned (multipoint terms are added there).</param>
    /// <param name="check">With --rounding-check rise or double: a layer gets its nearest codes back where its learned ones
    /// raise the model output loss on the check's samples beyond chance (with double: to at least twice the loss so
    /// far), the layers before it as decided; the model ends at or below nearest rounding's loss there. Not with
    /// <paramref name="afterLayer"/>, whose terms are built on the learned codes.</param>
    public static Result Apply(Inputs inputs, OnnxGraph quantized, QuantizationOptions options, IReadOnlyList<ModelFeed> batches,
        RunnerOptions runner, ProgressReporter progress, long budgetBytes = Onnx.OutputGroups.DefaultBudgetBytes, Action<Weight, GroupGrams[]>? afterLayer = null,
        OutputLossCheck? check = null)
    {
        if (afterLayer is not null && check is not null) throw new ArgumentException("the rounding check cannot revert layers that carry multipoint terms");
        var total = Stopwatch.StartNew();
        var weights = inputs.Weights;
        var layers = new List<Layer>();
        var kept = new List<string>();
        int samples = batches.Sum(b => b.Batch);
        var nearest = check?.Contributions(quantized.Model);
        var current = nearest;
        var nearestOfLearned = new List<TensorProto>();   // the nearest codes of the layers that keep learned ones
        progress.Start("rounding (AdaRound, layers)", weights.Count);
        for (int i = 0; i < weights.Count; i++)
        {
            var w = weights[i];
            var before = check is not null && Learnable(w, quantized, out _, out var dq) ? quantized.Initializer(dq.Input[0])!.Clone() : null;
            if (LearnLayer(inputs.Reference, w, quantized, options, batches, runner, budgetBytes, afterLayer) is { } layer)
            {
                if (before is not null && layer.Changed > 0)
                {
                    var after = check!.Contributions(quantized.Model);
                    bool worse = options.RoundingCheck == "double" ? OutputLossCheck.Breaks(after, current!) : OutputLossCheck.Rises(after, current!);
                    if (worse) quantized.ReplaceInitializer(before);
                    else
                    {
                        current = after;
                        nearestOfLearned.Add(before);
                    }
                    layer = layer with { CheckLoss = after.Sum(), Reverted = worse };
                }
                layers.Add(layer);
            }
            else kept.Add(w.Name);
            progress.Report(i + 1);
            MemoryUse.Release();   // the layer's three sessions are gone: give their memory back before the next
        }
        progress.Finish();
        CheckSummary? summary = null;
        if (check is not null)
        {
            // Rises within chance are let through layer by layer; should they add up to a model worse than nearest
            // rounding on the check's samples, every layer goes back to nearest.
            double nearestLoss = nearest!.Sum(), checkedLoss = current!.Sum();
            bool allNearest = checkedLoss > nearestLoss;
            if (allNearest)
            {
                foreach (var codes in nearestOfLearned) quantized.ReplaceInitializer(codes);
                layers = layers.Select(l => l with { Reverted = l.CheckLoss is not null }).ToList();
            }
            summary = new CheckSummary(check.LossName, check.Samples, check.ComparedOn, nearestLoss, checkedLoss, allNearest ? "nearest" : "checked",
                allNearest ? nearestLoss : checkedLoss, layers.Count(l => l.Reverted));
        }
        return new Result("adaround", options.RoundingTarget, options.RoundingIterations, samples, layers, kept, total.Elapsed.TotalSeconds, Check: summary);
    }

    /// <summary>Whether learned rounding can handle a weight: a Conv/Gemm/MatMul weight with rows, behind its DequantizeLinear.</summary>
    internal static bool Learnable(Weight w, OnnxGraph quantized, out WeightRows rows, out NodeProto dq)
    {
        rows = WeightRows.Of(w.Use.Node, w.Use.InputIndex, w.Shape)!;
        dq = quantized.Producer(w.Use.Node.Input[w.Use.InputIndex])!;
        return rows is not null && dq is { OpType: "DequantizeLinear" };
    }

    /// <summary>AdaRound on one layer, its codes written into <paramref name="quantized"/>; null for a weight it does not handle.</summary>
    internal static Layer? LearnLayer(ModelProto reference, Weight w, OnnxGraph quantized, QuantizationOptions options, IReadOnlyList<ModelFeed> batches,
        RunnerOptions runner, long budgetBytes, Action<Weight, GroupGrams[]>? afterLayer = null)
    {
        if (!Learnable(w, quantized, out var rows, out var dq)) return null;
        bool asymmetric = options.RoundingTarget == "fp32";
        var solver = new AdaRoundOptions { Iterations = options.RoundingIterations };
        int samples = batches.Sum(b => b.Batch);
        var clock = Stopwatch.StartNew();
        var grams = CollectGrams(reference, w, quantized, rows, batches, runner, budgetBytes);
        var codes = Codes.Read(quantized.Initializer(dq.Input[0])!, out int offset);
        var scales = quantized.InitializerFloats(dq.Input[1]);
        var range = options.WeightSpecFor(w.Name).Range;
        var outcomes = new RowRounding[rows.Rows];
        Parallel.For(0, rows.Rows, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, runner.Threads > 0 ? runner.Threads : Environment.ProcessorCount) }, r =>
        {
            float s = scales[scales.Length == 1 ? 0 : r];
            // The rewrite's codes (pair-bounded where the target needs it) are the baseline to beat and the fallback.
            var weightsOfRow = rows.Row(w.Values, r);
            outcomes[r] = AdaRound.Row(weightsOfRow, s, range, Problem(weightsOfRow, grams[rows.GroupOf(r)], asymmetric), solver, rows.Row(codes, r));
        });
        var learned = new int[codes.Length];
        for (int r = 0; r < rows.Rows; r++)
            for (int k = 0; k < rows.K; k++) learned[rows.Index(r, k)] = outcomes[r].Codes[k];
        int restored = RestorePairs(w, options, learned, codes);
        quantized.ReplaceInitializer(Codes.Write(quantized.Initializer(dq.Input[0])!, learned, offset));
        long changed = learned.Zip(codes).LongCount(p => p.First != p.Second);
        double before = outcomes.Sum(o => o.NearestError) / samples;
        double after = (restored == 0 ? outcomes.Sum(o => o.Error) : LayerError(w.Values, learned, scales, rows, grams, asymmetric)) / samples;
        afterLayer?.Invoke(w, grams);
        return new Layer(w.Name, w.Use.Node.OpType, rows.Rows, rows.K, before, after, changed, w.Values.Length, clock.Elapsed.TotalSeconds, restored);
    }

    /// <summary>On the AVX2 target, puts the pair-bounded codes back where learned codes would push an x86 int16 pair over its bound.</summary>
    internal static int RestorePairs(Weight w, QuantizationOptions options, int[] learned, int[] baseline)
    {
        if (options.Guard != SaturationGuard.PairBound) return 0;
        var layout = QdqRewriter.Reduction(w.Use.Node, w.Shape);
        return layout.AccumulatesExactlyOnX86 ? 0 : PairBound.Restore(layout, learned, baseline, options.X86ActivationMax);
    }

    /// <summary>The weight SQNR of every captured weight from the codes now in the graph (the rest as they were).</summary>
    public static IReadOnlyDictionary<string, double> WeightSqnr(IReadOnlyList<Weight> weights, OnnxGraph quantized, IReadOnlyDictionary<string, double>? before)
    {
        var result = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var (k, v) in before ?? new Dictionary<string, double>()) result[k] = v;
        foreach (var w in weights)
        {
            if (quantized.Producer(w.Use.Node.Input[w.Use.InputIndex]) is not { OpType: "DequantizeLinear" } dq) continue;
            var codes = Codes.Read(quantized.Initializer(dq.Input[0])!, out _);
            var scales = quantized.InitializerFloats(dq.Input[1]);
            int axis = scales.Length == 1 ? -1 : (int)NodeAttributes.GetInt(dq, "axis", 1);
            result[w.Name] = QdqRewriter.WeightSqnr(w.Values, new QuantizedWeight(codes, scales, axis, 0), w.Shape);
        }
        return result;
    }

    private static RowProblem Problem(float[] w, GroupGrams g, bool asymmetric) =>
        asymmetric ? RowProblem.Asymmetric(w, g.Quantized, g.Cross, g.Reference) : RowProblem.SameInputs(w, g.Quantized);

    /// <summary>
    /// The layer's Grams over the samples: its input in the FP32 model and in the quantized model as it is now (rows of
    /// padded sequence positions left out).
    /// </summary>
    internal static GroupGrams[] CollectGrams(ModelProto reference, Weight w, OnnxGraph quantized, WeightRows rows, IReadOnlyList<ModelFeed> batches, RunnerOptions runner, long budgetBytes)
    {
        string quantizedInput = w.Use.Node.Input[0];
        var gramModel = InputGram.Build(w.Use.Node, w.Shape, rows, quantized.OpsetVersion());
        var referenceModel = InputGram.Prefix(reference, w.Input);
        var quantizedModel = InputGram.Prefix(quantized.Model, quantizedInput);
        using var fp32 = OrtRunner.FromModel(referenceModel, runner, "FP32 model up to " + w.Input);
        using var q = OrtRunner.FromModel(quantizedModel, runner, "quantized model up to " + quantizedInput);
        IEnumerable<(FloatTensor, FloatTensor)> Pairs()
        {
            // Padded sequence positions of text batches add nothing: the model's output never sees them (PaddingMask).
            foreach (var b in batches)
            {
                var mask = PaddingMask.Of(b);
                yield return (PaddingMask.Apply(fp32.Run(b, [fp32.OutputNames[0]])[fp32.OutputNames[0]], mask),
                    PaddingMask.Apply(q.Run(b, [q.OutputNames[0]])[q.OutputNames[0]], mask));
            }
        }
        int window = w.Use.Node.OpType == "Conv" ? w.Shape[2..].Aggregate(1, (a, b) => a * b) : 1;
        return InputGram.Collect(gramModel, Pairs(), rows, runner, window, budgetBytes);
    }

    /// <summary>Σ_rows of the reconstruction error of a layer's codes.</summary>
    private static double LayerError(float[] weights, int[] codes, float[] scales, WeightRows rows, GroupGrams[] grams, bool asymmetric)
    {
        double e = 0;
        for (int r = 0; r < rows.Rows; r++)
        {
            e += AdaRound.Error(scales[scales.Length == 1 ? 0 : r], rows.Row(codes, r), Problem(rows.Row(weights, r), grams[rows.GroupOf(r)], asymmetric));
        }
        return e;
    }
}
