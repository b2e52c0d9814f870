using System.Diagnostics;
using PtqTool.Distill;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;
using PtqTool.Rounding;

namespace PtqTool.Pipeline;

/// <summary>
/// `--rounding brecq`: block reconstruction (Li et al., "BRECQ: Pushing the Limit of Post-Training Quantization by Block
/// Reconstruction", ICLR 2021). The float model is cut into blocks (<see cref="BlockPartition"/>); in graph order, the
/// rounding of every weight of a block is learned jointly so that the block, fed what the quantized model so far feeds
/// it, reproduces the FP32 model's block output: L = Σ ‖f(x̃; W̃) − y‖² over the rounding samples (over the positions
/// the attention mask keeps, where a text batch has one and the block output is [N, S, K]). The block's forward
/// and backward pass run in ONNX Runtime (<see cref="BlockGradientGraph"/>), the rounding variables and Adam in C#
/// (<see cref="SoftRounding"/>). Blocks it cannot build a gradient graph for get per-layer AdaRound.
/// </summary>
public static class BlockReconstructionStep
{
    /// <summary>Samples per optimizer step.</summary>
    public const int MiniBatch = 32;
    /// <summary>λ of the rounding regularizer against the block loss relative to nearest rounding's (as AdaRound's, docs/rounding.md).</summary>
    public const double Regularization = 3;
    public const double LearningRate = 0.05;
    /// <summary>How far from ½ the relaxed rounding h(V) starts towards each per-layer AdaRound code (h = ¼ or ¾).</summary>
    public const double StartLean = 0.25;
    /// <summary>Every this-many-th rounding sample is held out of the block fits and decides the output check.</summary>
    public const int HoldOutEvery = 5;

    /// <param name="NearestError">The block's squared output error per sample with the codes it started from (nearest rounding).</param>
    /// <param name="Error">The same with the codes it ends with.</param>
    /// <param name="Method">brecq, or adaround when the block was learned layer by layer (<paramref name="Reason"/> says why).</param>
    /// <param name="LayerwiseError">The same with per-layer AdaRound's codes (where the block optimization starts).</param>
    public sealed record BlockOutcome(int Index, string? Input, string? Output, int Layers, string Method, double NearestError, double LayerwiseError, double Error, double Seconds, string? Reason);

    /// <param name="check">With --rounding-check, the check of the per-layer AdaRound alternative (<see cref="RoundingStep.Apply"/>).</param>
    public static RoundingStep.Result Apply(RoundingStep.Inputs inputs, OnnxGraph quantized, QuantizationOptions options, IReadOnlyList<ModelFeed> batches,
        RunnerOptions runner, ProgressReporter progress, long budgetBytes, OutputLossCheck? check = null)
    {
        var total = Stopwatch.StartNew();
        int samples = batches.Sum(b => b.Batch);
        // The blocks are fitted on four samples in five; the fifth decides at the end between their codes and per-layer
        // AdaRound's (which saw every sample, so the check leans towards AdaRound when in doubt).
        var (fit, held) = HoldOut(batches, HoldOutEvery);
        if (held.Count == 0) throw new PtqException($"--rounding brecq: {samples} rounding sample(s) leave none to hold out for the output check (give at least {HoldOutEvery})");
        // Per-layer AdaRound of the whole model first, on a copy: the alternative the block result must beat at the output.
        var alternative = new OnnxGraph(quantized.Model.Clone());
        var layerwise = RoundingStep.Apply(inputs, alternative, options, batches, runner, progress, budgetBytes, check: check);
        var learnable = inputs.Weights.Where(w => RoundingStep.Learnable(w, quantized, out _, out _)).ToList();
        var kept = inputs.Weights.Where(w => !learnable.Contains(w)).Select(w => w.Name).ToList();
        var blocks = BlockPartition.Of(inputs.Reference, learnable);
        List<RoundingStep.Layer> layers = [];
        var outcomes = new List<BlockOutcome>();
        progress.Start("rounding (BRECQ, blocks)", blocks.Count);
        foreach (var block in blocks)
        {
            var clock = Stopwatch.StartNew();
            string? reason = block.Refusal;
            if (reason is null)
            {
                try
                {
                    var (learned, outcome) = Learn(block, inputs.Reference, quantized, options, fit, runner, budgetBytes);
                    layers.AddRange(learned);
                    outcomes.Add(outcome with { Seconds = clock.Elapsed.TotalSeconds });
                }
                catch (PtqException e)
                {
                    reason = e.Message;
                }
            }
            if (reason is not null)
            {
                var alone = block.Layers.Select(w => RoundingStep.LearnLayer(inputs.Reference, w, quantized, options, fit, runner, budgetBytes)).OfType<RoundingStep.Layer>().ToList();
                layers.AddRange(alone);
                outcomes.Add(new BlockOutcome(block.Index, block.Input, block.Output, block.Layers.Count, "adaround",
                    alone.Sum(l => l.NearestError), alone.Sum(l => l.Error), alone.Sum(l => l.Error), clock.Elapsed.TotalSeconds, reason));
            }
            progress.Report(block.Index + 1);
            MemoryUse.Release();
        }
        progress.Finish();
        // Blocks are fitted one after another, each to its own FP32 output: that the model output improves with them is
        // likely, not certain, and a block fitted on a few hundred samples can learn them rather than the task. The model
        // keeps whichever of the two reproduces the FP32 output better on the held-out samples.
        double blockError = OutputError(inputs.Reference, quantized, held, runner), layerError = OutputError(inputs.Reference, alternative, held, runner);
        var outputCheck = new OutputCheck(layerError, blockError, blockError <= layerError ? "brecq" : "adaround", held.Sum(b => b.Batch));
        if (outputCheck.Kept == "adaround")
        {
            foreach (var w in learnable)
            {
                string codes = quantized.Producer(w.Use.Node.Input[w.Use.InputIndex])!.Input[0];
                quantized.ReplaceInitializer(alternative.Initializer(codes)!.Clone());
            }
            layers = [.. layerwise.Layers];
        }
        return new RoundingStep.Result("brecq", "fp32", options.RoundingIterations, samples, layers, kept, total.Elapsed.TotalSeconds, outcomes, outputCheck, layerwise.Check);
    }

    /// <param name="AdaRoundError">The model output's squared error against FP32 per sample with per-layer AdaRound's codes.</param>
    /// <param name="BrecqError">The same with the blocks' codes.</param>
    /// <param name="Kept">Which codes the model keeps: brecq or adaround.</param>
    /// <param name="Samples">The held-out rounding samples the two are compared on (not used to fit the blocks).</param>
    public sealed record OutputCheck(double AdaRoundError, double BrecqError, string Kept, int Samples);

    /// <summary>
    /// Splits the samples: every <paramref name="every"/>-th (counting from 1) held out, the rest to fit. Batches keep
    /// the first one's size; samples of different shapes (sequence lengths) never share a batch.
    /// </summary>
    public static (List<ModelFeed> Fit, List<ModelFeed> Held) HoldOut(IReadOnlyList<ModelFeed> batches, int every)
    {
        List<ModelFeed> fit = [], held = [];
        List<ModelFeed> fitRun = [], heldRun = [];
        int size = batches.Count == 0 ? 1 : batches[0].Batch, index = 0;
        void Add(List<ModelFeed> done, List<ModelFeed> run, ModelFeed row)
        {
            if (run.Count > 0 && (run.Count == size || run[0].ShapeKey != row.ShapeKey)) Flush(done, run);
            run.Add(row);
        }
        static void Flush(List<ModelFeed> done, List<ModelFeed> run)
        {
            if (run.Count == 0) return;
            done.Add(ModelFeed.Concat([.. run]));
            run.Clear();
        }
        foreach (var b in batches)
            for (int r = 0; r < b.Batch; r++, index++)
            {
                var row = b.Batch == 1 ? b : b.Slice(r, 1);
                if (index % every == every - 1) Add(held, heldRun, row); else Add(fit, fitRun, row);
            }
        Flush(fit, fitRun);
        Flush(held, heldRun);
        return (fit, held);
    }

    /// <summary>
    /// Σ over the samples of the squared difference of the first output, quantized (exact QDQ semantics: no fusion) vs
    /// FP32, per sample; padded positions left out where the batch has an attention mask that covers the output.
    /// </summary>
    private static double OutputError(ModelProto reference, OnnxGraph quantized, IReadOnlyList<ModelFeed> batches, RunnerOptions runner)
    {
        var exact = runner with { Optimization = Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var fp32 = OrtRunner.FromModel(reference, exact, "FP32 model");
        using var q = OrtRunner.FromModel(quantized.Model, exact, "quantized model");
        string output = fp32.OutputNames[0];
        double sum = 0;
        int count = 0;
        foreach (var b in batches)
        {
            var fp32Output = fp32.Run(b, [output])[output];
            var a = PaddingMask.Apply(fp32Output, PaddingMask.Of(b)).Data;
            var c = PaddingMask.Apply(q.Run(b, [output])[output], PaddingMask.Of(b)).Data;
            for (int i = 0; i < a.Length; i++) sum += (a[i] - (double)c[i]) * (a[i] - c[i]);
            count += b.Batch;
        }
        return sum / Math.Max(1, count);
    }

    /// <summary>One block's joint rounding, written into <paramref name="quantized"/> unless it is worse than the codes there.</summary>
    private static (List<RoundingStep.Layer>, BlockOutcome) Learn(BlockPartition.Block block, ModelProto reference, OnnxGraph quantized, QuantizationOptions options,
        IReadOnlyList<ModelFeed> batches, RunnerOptions runner, long budgetBytes)
    {
        var clock = Stopwatch.StartNew();
        // Every block input as the quantized model computes it (the tensor the block continues, then side inputs such as
        // an attention mask), the target from the FP32 model.
        var xs = block.Inputs.Select(t => QuantizedRead(quantized, block, t)).Select(t => Collect(quantized.Model, t, batches, runner, "quantized model up to " + t)).ToList();
        var y = Collect(reference, block.Output!, batches, runner, "FP32 model up to " + block.Output);
        int samples = y.Batch, batch = Math.Min(MiniBatch, samples);
        for (int i = 0; i < xs.Count; i++)
            if (xs[i].Shape.Length == 0 || xs[i].Batch != samples)
                throw new PtqException($"block input '{block.Inputs[i]}' has no sample axis ({xs[i].Batch} rows over {samples} samples)");
        var positions = Positions(batches, y);
        var graph = BlockGradientGraph.Build(reference, block.Nodes, block.Inputs, block.Output!, block.Layers.Select(w => w.Name).ToList(),
            xs.Select(x => (int[])[batch, .. x.Shape[1..]]).ToList(), positions is not null);

        // Each layer: its codes now (nearest rounding, pair-bounded where the target needs it), scales and learnable state.
        var state = block.Layers.Select(w =>
        {
            RoundingStep.Learnable(w, quantized, out var rows, out var dq);
            var codes = Codes.Read(quantized.Initializer(dq.Input[0])!, out int offset);
            var scales = quantized.InitializerFloats(dq.Input[1]);
            var perWeight = new float[w.Values.Length];
            for (int r = 0; r < rows.Rows; r++)
                for (int k = 0; k < rows.K; k++) perWeight[rows.Index(r, k)] = scales[scales.Length == 1 ? 0 : r];
            return (Weight: w, Rows: rows, Dq: dq, Baseline: codes, Offset: offset, Scales: perWeight, Soft: new SoftRounding(w.Values, perWeight, options.WeightSpecFor(w.Name).Range));
        }).ToList();
        FloatTensor Dequantized(int[] codes, float[] scales, int[] shape) => new(codes.Select((c, i) => scales[i] * c).ToArray(), shape);

        using var session = OrtRunner.FromModel(graph.Model, runner, $"block {block.Index} gradient graph");
        int chunks = samples / batch;
        double Loss(IReadOnlyList<int[]> codes)
        {
            var weights = state.Select((s, l) => Dequantized(codes[l], s.Scales, s.Weight.Shape)).ToList();
            double sum = 0;
            for (int c = 0; c < chunks; c++)
            {
                var feeds = Feeds(graph, xs.Select(x => x.Slice(c * batch, batch)).ToList(), y.Slice(c * batch, batch), weights, positions?.Slice(c * batch, batch));
                sum += session.Run(feeds, [graph.Loss])[graph.Loss].Data[0];
            }
            return sum / (chunks * batch);
        }
        var baseline = state.Select(s => s.Baseline).ToList();
        double nearest = Loss(baseline);
        // Per-layer AdaRound first (each layer on inputs that carry the block's earlier learned layers): the block
        // optimization starts from its codes, and the block keeps whichever rounding reproduces its output best.
        var adaround = new List<int[]>();
        foreach (var s in state)
        {
            RoundingStep.LearnLayer(reference, s.Weight, quantized, options, batches, runner, budgetBytes);
            adaround.Add(Codes.Read(quantized.Initializer(s.Dq.Input[0])!, out _));
        }
        double layerwise = Loss(adaround);
        for (int l = 0; l < state.Count; l++)
            state[l] = state[l] with { Soft = new SoftRounding(state[l].Weight.Values, state[l].Scales, options.WeightSpecFor(state[l].Weight.Name).Range, adaround[l], StartLean) };

        // No warm-up without the regularizer: the start is already a rounding, not the float weights.
        int iterations = options.RoundingIterations;
        int regularized = state.Sum(s => s.Soft.Count);
        var random = new Random(block.Index);
        var order = Enumerable.Range(0, samples).ToArray();
        int cursor = samples;
        var xb = xs.Select(x => new float[batch * x.SampleSize]).ToList();
        var yb = new float[batch * y.SampleSize];
        var pb = positions is null ? null : new float[batch * positions.SampleSize];
        var soft = state.Select(s => new float[s.Soft.Count]).ToList();
        string[] outputs = [.. graph.WeightGradients];
        if (nearest > 0)
            for (int t = 0; t < iterations; t++)
            {
                for (int b = 0; b < batch; b++)
                {
                    if (cursor == samples) { random.Shuffle(order); cursor = 0; }
                    int i = order[cursor++];
                    for (int j = 0; j < xs.Count; j++) Array.Copy(xs[j].Data, (long)i * xs[j].SampleSize, xb[j], (long)b * xs[j].SampleSize, xs[j].SampleSize);
                    Array.Copy(y.Data, (long)i * y.SampleSize, yb, (long)b * y.SampleSize, y.SampleSize);
                    if (pb is not null) Array.Copy(positions!.Data, (long)i * positions.SampleSize, pb, (long)b * positions.SampleSize, positions.SampleSize);
                }
                for (int l = 0; l < state.Count; l++) state[l].Soft.Soft(soft[l]);
                var feeds = Feeds(graph, xb.Select((d, j) => new FloatTensor(d, graph.InputShapes[j])).ToList(), new FloatTensor(yb, graph.OutputShape),
                    state.Select((s, l) => new FloatTensor(soft[l], s.Weight.Shape)).ToList(), pb is null ? null : new FloatTensor(pb, [batch, .. positions!.Shape[1..]]));
                var result = session.Run(feeds, outputs);
                double beta = 2 + (20 - 2) * (1 - t / (double)Math.Max(1, iterations));
                for (int l = 0; l < state.Count; l++)
                    state[l].Soft.Step(result[outputs[l]].Data, 1 / (batch * nearest), Regularization, beta, regularized, LearningRate, t);
            }

        var learned = state.Select(s => s.Soft.Codes()).ToList();
        var restored = state.Select((s, l) => RoundingStep.RestorePairs(s.Weight, options, learned[l], s.Baseline)).ToList();
        double error = nearest > 0 ? Loss(learned) : nearest;
        // The annealing is a heuristic: the block keeps whichever of nearest, per-layer and block rounding reproduces
        // its FP32 output best on the samples.
        string? note = null;
        if (layerwise < error) { learned = adaround; error = layerwise; restored = state.Select(_ => 0).ToList(); note = "per-layer AdaRound kept: the block optimization did not lower the block's error"; }
        if (nearest <= error) { learned = baseline; error = nearest; restored = state.Select(_ => 0).ToList(); note = "nearest kept: learned rounding did not lower the block's error"; }
        var result2 = new List<RoundingStep.Layer>();
        for (int l = 0; l < state.Count; l++)
        {
            var s = state[l];
            quantized.ReplaceInitializer(Codes.Write(quantized.Initializer(s.Dq.Input[0])!, learned[l], s.Offset));
            long changed = learned[l].Zip(s.Baseline).LongCount(p => p.First != p.Second);
            result2.Add(new RoundingStep.Layer(s.Weight.Name, s.Weight.Use.Node.OpType, s.Rows.Rows, s.Rows.K, nearest, error, changed, s.Weight.Values.Length,
                clock.Elapsed.TotalSeconds, restored[l], block.Index));
        }
        return (result2, new BlockOutcome(block.Index, block.Input, block.Output, block.Layers.Count, "brecq", nearest, layerwise, error, clock.Elapsed.TotalSeconds, note));
    }

    private static Dictionary<string, FloatTensor> Feeds(BlockGraph graph, IReadOnlyList<FloatTensor> xs, FloatTensor y, IReadOnlyList<FloatTensor> weights, FloatTensor? positions)
    {
        var feeds = new Dictionary<string, FloatTensor> { [graph.Target] = y };
        for (int i = 0; i < xs.Count; i++) feeds[graph.Inputs[i]] = xs[i];
        for (int l = 0; l < weights.Count; l++) feeds[graph.Weights[l]] = weights[l];
        if (graph.Positions is { } name) feeds[name] = positions!;
        return feeds;
    }

    /// <summary>
    /// The samples' attention masks as [N, S, 1] position weights, where every batch has one, the block output is
    /// [N, S, K] over it, and some position is padded; null otherwise (every position counts).
    /// </summary>
    public static FloatTensor? Positions(IReadOnlyList<ModelFeed> batches, FloatTensor output)
    {
        var masks = batches.Select(PaddingMask.Of).ToList();
        if (masks.Count == 0 || masks.Any(m => m is null)) return null;
        var mask = FloatTensor.Concat(masks!);
        if (!PaddingMask.Covers(output.Shape, mask) || !mask.Data.Contains(0f)) return null;
        return new FloatTensor(mask.Data, [mask.Shape[0], mask.Shape[1], 1]);
    }

    /// <summary>The tensor the quantized model's block nodes read in place of the block input <paramref name="tensor"/> (its dequantized copy where it is quantized).</summary>
    private static string QuantizedRead(OnnxGraph quantized, BlockPartition.Block block, string tensor)
    {
        var byName = quantized.Graph.Node.Where(n => n.Name.Length > 0).GroupBy(n => n.Name, StringComparer.Ordinal)
            .Where(g => g.Count() == 1).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        foreach (var n in block.Nodes)
            for (int i = 0; i < n.Input.Count; i++)
                if (n.Input[i] == tensor && byName.TryGetValue(n.Name, out var q) && q.OpType == n.OpType && i < q.Input.Count)
                    return q.Input[i];
        if (quantized.Producer(tensor) is not null || quantized.IsGraphInput(tensor)) return tensor;
        throw new PtqException($"block {block.Index}: its input '{tensor}' has no counterpart in the quantized model");
    }

    /// <summary>One tensor of a model over all sample batches, joined.</summary>
    private static FloatTensor Collect(ModelProto model, string tensor, IReadOnlyList<ModelFeed> batches, RunnerOptions runner, string name)
    {
        using var session = OrtRunner.FromModel(InputGram.Prefix(model, tensor), runner, name);
        var parts = batches.Select(b => session.Run(b, [session.OutputNames[0]])[session.OutputNames[0]]).ToList();
        // Sequences of several lengths give block tensors of several shapes: the block graph is built for one.
        var shapes = parts.Select(p => string.Join(',', p.Shape.Skip(1))).Distinct().ToList();
        if (shapes.Count > 1)
            throw new PtqException($"'{tensor}' comes in several shapes over the samples ({string.Join("; ", shapes.Take(3))}); a block is fitted on one shape (give --seq-len N)");
        return FloatTensor.Concat(parts);
    }
}
