using PtqTool.Calibration;
using PtqTool.Data;

namespace PtqTool.Pipeline;

/// <summary>Gets activation statistics: from stats files (merged), or by running calibration images through the folded model.</summary>
public static class CalibrationStep
{
    /// <summary>Statistics collected once and reused by a later run of the same data (--auto-fallback's final run).</summary>
    /// <param name="Synthetic">The synthetic samples they were collected on, if any (later steps measure on them too).</param>
    public sealed record Kept(ActivationStatistics Stats, string Source, Onnx.FloatTensor? Synthetic)
    {
        /// <summary>
        /// These statistics as a fresh calibration for <paramref name="model"/> would give them, or null when its plan
        /// observes a tensor they lack. Channel means are kept only where that run would keep them.
        /// </summary>
        public (ActivationStatistics, string)? For(PreparedModel model, QuantizeRequest request)
        {
            if (model.Sha256 != Stats.ModelSha256 || model.Plan.StatsTensors.Any(t => !Stats.Tensors.ContainsKey(t))) return null;
            var copy = new ActivationStatistics(Stats.ModelSha256) { Samples = Stats.Samples, Skipped = Stats.Skipped };
            foreach (var t in model.Plan.StatsTensors) copy.Tensors[t] = Stats.Tensors[t];
            if (request.KeepChannelMeans ?? model.Options.BiasCorrection)
                foreach (var (t, c) in Stats.Channels) copy.Channels[t] = c;
            return (copy, Source);
        }
    }

    /// <param name="syntheticSamples">Receives the synthetic samples when --synthetic made them (mixed precision measures on them too).</param>
    public static (ActivationStatistics Stats, string Source) Run(PreparedModel model, QuantizeRequest request, ProgressReporter progress,
        Action<Onnx.FloatTensor>? syntheticSamples = null)
    {
        if (request.StatsPaths.Count > 0)
        {
            var merged = LoadMerged(request.StatsPaths, model.Sha256);
            var missing = model.Plan.StatsTensors.Where(t => !merged.Tensors.ContainsKey(t)).ToList();
            if (missing.Count > 0)
                throw new PtqException($"{request.StatsPaths[0]}: lacks statistics for {missing.Count} tensor(s), e.g. '{missing[0]}' (calibrated with other --exclude or activation options?)");
            CheckFinite(merged, request.StatsPaths[0]);
            return (merged, $"{request.StatsPaths.Count} statistics file(s)");
        }
        ActivationStatistics Collect(Func<int, IEnumerable<SampleBatch>> batches) =>
            StatisticsCollector.Collect(model.Folded.Model, model.Plan.StatsTensors, batches, model.Sha256,
                new Onnx.RunnerOptions { Threads = request.Threads },
                channelTensors: request.KeepChannelMeans ?? model.Options.BiasCorrection ? BiasCorrectedInputs(model) : [],
                budgetBytes: (long)request.MemoryBudgetMiB << 20, release: MemoryUse.Release);
        if (request.Synthetic is not null)
        {
            var samples = SyntheticSamples(model, request, progress);
            syntheticSamples?.Invoke(samples);
            var synthetic = Collect(_ => Batches(samples, request.Batch));
            CheckFinite(synthetic, $"--synthetic {request.Synthetic}");
            return (synthetic, $"{request.Synthetic} ({samples.Batch} synthetic samples)");
        }
        if (request.CalibDir is null)
            throw new PtqException("no calibration data: give --calib DIR, --stats FILE or --synthetic zeroq|gaussian");
        // --limit picks the data set; --shard then splits that set, so shards together see exactly what one run sees.
        var files = model.CalibrationSamples(request);
        if (request.Shard is (int index, int count)) files = SampleFolder.Shard(files, index, count);
        if (files.Count == 0) throw new PtqException($"{request.CalibDir}: this shard holds no samples");
        BatchReader? first = null;
        IEnumerable<SampleBatch> Pass(int pass)
        {
            // A pass per group of exposed tensors when one sample's tensors exceed --memory-budget; the first counts skips.
            var reader = model.Reader(files, request.Batch, request.Strict);
            if (pass == 0) first = reader;
            progress.Start(pass == 0 ? "calibrating" : $"calibrating (pass {pass + 1})", files.Count);
            return Prefetch.Ahead(reader.Read(progress.Report));
        }
        var stats = Collect(Pass);
        progress.Finish();
        var reader = first!;
        stats.Skipped = reader.Skipped;
        foreach (var w in reader.Warnings.Take(5)) progress.Warn($"warning: skipped {w}");
        if (reader.Skipped > 5) progress.Warn($"warning: skipped {reader.Skipped} files in all");
        foreach (var note in reader.Notes) progress.Message(note);
        if (stats.Samples == 0) throw new PtqException($"{request.CalibDir}: no sample could be read ({reader.Skipped} skipped)");
        CheckFinite(stats, request.CalibDir);
        return (stats, $"{request.CalibDir}{(request.Shard is (int i, int n) ? $" shard {i}/{n}" : "")}");
    }

    /// <summary>
    /// The inputs of the layers bias correction can correct (Conv, Gemm): their per-channel means are kept. MatMul inputs
    /// are not: the correction does not handle MatMul, and a transformer's [batch, sequence, hidden] input has no
    /// channel axis at 1 (its length varies from batch to batch).
    /// </summary>
    private static List<string> BiasCorrectedInputs(PreparedModel model) =>
        model.Plan.Weights.Where(w => w.Node.OpType is "Conv" or "Gemm").Select(w => w.Node.Input[0]).Distinct().ToList();

    /// <summary>NaN or infinite activations mean the FP32 model breaks on this data: no scale chosen from them would mean anything.</summary>
    public static void CheckFinite(ActivationStatistics stats, string source)
    {
        var bad = stats.Tensors.Where(kv => kv.Value.NonFinite > 0).OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        if (bad.Count > 0)
            throw new PtqException($"{source}: tensor '{bad[0].Key}' took {bad[0].Value.NonFinite} NaN/Inf value(s) during calibration ({bad.Count} tensor(s) in all): the FP32 model overflows on this data");
    }

    /// <summary>The synthetic calibration batch: ZeroQ-distilled, or plain N(0,1) in the model's input space.</summary>
    public static Onnx.FloatTensor SyntheticSamples(PreparedModel model, QuantizeRequest request, ProgressReporter progress)
    {
        if (model.NamedInputs)
            throw new PtqException($"--synthetic: {model.Path} has {model.Inputs.Count} input(s) of which not all are one float tensor; synthetic data is made for a single float input (give --calib DIR of .npz samples or --calib-text)");
        var o = request.Distill with { Threads = request.Threads, InputRange = ImageInputRange(model) };
        int[] shape = [o.Count, .. model.SampleShape];
        if (request.Synthetic == "gaussian")
            return new Onnx.FloatTensor(Distill.ZeroQDistiller.Gaussian(Onnx.FloatTensor.Count(shape), o.Seed), shape);
        progress.Start("distilling (ZeroQ)", o.Iterations);
        var result = Distill.ZeroQDistiller.Run(model.NormalizedForRuntime(), model.SampleShape, o, progress.Report);
        progress.Finish();
        progress.Message($"ZeroQ: BN loss {result.Losses[0]:G4} -> {result.Losses[^1]:G4} over {o.Iterations} iterations ({result.BatchNormLayers} BN layers)");
        return result.Samples;
    }

    /// <summary>For NCHW image inputs, the range pixels 0..255 map to; otherwise none.</summary>
    public static (float[], float[])? ImageInputRange(PreparedModel model) =>
        model.Preprocessing.Layout == "nchw" && model.SampleShape.SequenceEqual(model.Preprocessing.SampleShape) ? model.Preprocessing.InputRange() : null;

    /// <summary>Splits an in-memory batch into batches of at most <paramref name="size"/> (unlabelled).</summary>
    public static IEnumerable<SampleBatch> Batches(Onnx.FloatTensor samples, int size)
    {
        for (int start = 0; start < samples.Batch; start += size)
        {
            int count = Math.Min(size, samples.Batch - start);
            yield return new SampleBatch(samples.Slice(start, count), Enumerable.Repeat(-1, count).ToArray(), Enumerable.Repeat("(synthetic)", count).ToArray());
        }
    }

    public static ActivationStatistics LoadMerged(IReadOnlyList<string> paths, string expectedSha256)
    {
        var merged = ActivationStatistics.MergeShards(paths);
        if (merged.ModelSha256 != expectedSha256)
        {
            var markers = new[] { (PreparedModel.EqualizedDigestSuffix, "--equalize"), (PreparedModel.AffineKeptDigestSuffix, "--keep-affine") };
            string Bare(string digest) => markers.Aggregate(digest, (d, m) => d.Replace(m.Item1, ""));
            if (Bare(merged.ModelSha256) == Bare(expectedSha256))
                foreach (var (marker, option) in markers)
                    if (merged.ModelSha256.Contains(marker, StringComparison.Ordinal) != expectedSha256.Contains(marker, StringComparison.Ordinal))
                        throw new PtqException($"{paths[0]}: statistics were collected {(merged.ModelSha256.Contains(marker, StringComparison.Ordinal) ? "with" : "without")} {option}; give the same {option} to calibrate and quantize");
            throw new PtqException($"{paths[0]}: statistics are of a different model file (sha256 of the model and its external data differs)");
        }
        return merged;
    }
}
