using Microsoft.ML.OnnxRuntime;
using PtqTool.Data;
using PtqTool.Evaluation;
using PtqTool.Kernels;
using PtqTool.Onnx;
using PtqTool.Reports;
using PtqTool.Rewrite;

namespace PtqTool.Pipeline;

/// <summary>
/// `ptq quantize` end to end: prepare → calibrate (or load stats) → choose scales → rewrite → check saturation for the
/// target → evaluate (FP32, this CPU's fused integer kernels, exact QDQ semantics) → save the model → report.
/// </summary>
/// <param name="fallback">What --auto-fallback did before this run (its final options are the request's).</param>
/// <param name="statsSamples">The synthetic samples the request's --stats were made of (ptq sweep's kept calibration), which mixed precision and --refine measure on as a run with --synthetic would.</param>
public sealed class QuantizeJob(QuantizeRequest request, ProgressReporter progress, FallbackJob.Result? fallback = null, Onnx.FloatTensor? statsSamples = null)
{
    public QuantizationReport Run()
    {
        request.Validated();
        var (model, smoothing) = SmoothQuantStep.Apply(PreparedModel.Prepare(request, progress.Warn), request, progress);
        string output = request.ResolvedOutputPath;
        // The quantized model's sidecar (ptq eval reads it), where samples are preprocessed images or tensors (not for
        // named multi-input samples, text or raw audio); a report asked for at that very path wins.
        string? sidecar = ModelInputs.Preprocessed(model.Inputs) ? Preprocessing.SidecarPath(output) : null;
        if (sidecar is not null && request.ReportPaths.Any(r => Onnx.FileIdentity.Same(r, sidecar)))
        {
            progress.Warn($"note: the report {sidecar} takes the place of the quantized model's preprocessing sidecar; give ptq eval the preprocessing flags");
            sidecar = null;
        }
        CheckPaths(model, output, sidecar);
        // Everything the evaluation needs is checked now, before the calibration work.
        var evaluationSet = EvaluationSet.Resolve(request, model);
        var gate = request.ResolveGate(evaluationSet.Labelled, model.OutputShape);
        MemoryUse.Trace("preparing");
        Onnx.FloatTensor? synthetic = null;
        // After --auto-fallback, the statistics its search measured on are those of this data: no second pass.
        // (Not after smoothing: those statistics are of the unsmoothed tensors.)
        var reused = smoothing is null ? fallback?.Calibration.For(model, request) : null;
        if (reused is not null) synthetic = fallback!.Calibration.Synthetic;
        var (stats, calibrationSource) = reused ?? CalibrationStep.Run(model, request, progress, s => synthetic = s);
        if (request.StatsPaths.Count > 0) synthetic ??= statsSamples;
        MemoryUse.Release();
        MemoryUse.Trace("calibration");
        var (options, mixed) = MixedPrecisionStep.Apply(model, request, progress, synthetic);
        var parameters = ActivationParameters.Choose(model.Plan, stats, options);
        var means = stats.Channels.ToDictionary(kv => kv.Key, kv => kv.Value.Means, StringComparer.Ordinal);
        MemoryUse.Trace("scale choice");
        var ownScales = parameters;
        (parameters, var refinement) = ScaleRefinementStep.Apply(model, request, options, parameters, means, synthetic, progress);
        MemoryUse.Release();
        MemoryUse.Trace("scale refinement");
        // --int4-rounding gptq: the MatMulNBits weights' input Grams, from the float graph before it is rewritten.
        bool samplesGiven = request.CalibDir is not null || synthetic is not null;
        var grams = options.Int4WeightStorage && (options.Int4Rounding ?? (samplesGiven ? "gptq" : "nearest")) == "gptq"
            ? MatMulGramStep.Collect(model, request, synthetic) : null;
        if (grams is not null)
        {
            MemoryUse.Release();
            MemoryUse.Trace("matmul grams");
        }
        var floatWeights = RoundingStep.Capture(model, options);
        // --output-bias-correction on: where calibration (or synthetic) samples are given.
        var fp32Folded = options.OutputBiasCorrection && samplesGiven && model.Folded.Graph.Node.Any(n => n.OpType == "Conv")
            ? model.Folded.Model.Clone() : null;
        // With bias correction, the refined scales compete with each tensor's own: bias correction removes the mean
        // errors that the refinement partly moved scales to offset, and on some models it does better from the
        // unrefined start (docs/accuracy.md). Not with learned rounding or multipoint, which fit weights to one set.
        // Both candidates are corrected against one FP32 reference (the samples read and run through FP32 once).
        OutputBiasCorrectionStep.FloatReference? obcReference = null;
        var unrefined = fp32Folded is not null && refinement is { Changed: > 0 } && floatWeights is null
            ? Unrefined(model, ownScales, options, means, q => obcReference = OutputBiasCorrectionStep.Reference(fp32Folded, q, model, request, synthetic), request, progress) : null;
        // Per-layer errors of an equalized model are measured against the equalized float graph: its tensors of the
        // original's names hold per-channel rescaled values (the function is the same, the tensors are not).
        var equalizedFloat = model.EqualizedPairs > 0 ? fp32Folded ?? model.Folded.Model.Clone() : null;
        var summary = QdqRewriter.Apply(model.Folded, model.Plan, parameters, options, means);
        var quantized = model.Folded.Model;
        RoundingStep.Result? rounding = null;
        MultipointStep.Result? multipoint = null;
        if (floatWeights is not null)
        {
            MemoryUse.Trace("rewrite (nearest)");
            bool learned = options.Rounding != "nearest";
            string purpose = learned ? "--rounding " + options.Rounding : "--multipoint";
            var samples = SampleBatches.Load(model, request, request.EffectiveRoundingSamples, synthetic, purpose);
            int loaded = samples.Sum(b => b.Batch);
            if (options.Rounding == "brecq" && loaded < RoundingStep.DefaultBlockSamples / 2)
                progress.Warn($"note: --rounding brecq on {loaded} samples: blocks fitted on a few hundred samples can learn them rather than the task; about {RoundingStep.DefaultBlockSamples} are advised (docs/rounding.md), or --rounding adaround");
            var runner = new RunnerOptions { Threads = request.Threads };
            long budget = (long)request.MemoryBudgetMiB << 20;
            if (learned)
            {
                // With multipoint, the channels are chosen on the nearest-rounded model; each layer's terms are then
                // learned in graph order on inputs that carry the upstream terms (MultipointStep).
                var selection = options.Multipoint > 0 ? MultipointStep.Select(floatWeights, model.Folded, options, samples, runner, progress, budget) : null;
                // The check measures on calibration samples after the rounding samples (as the refinement's held-out
                // comparison does); not with multipoint, whose terms are built on each layer's learned codes.
                var check = options.RoundingCheck != "off" && selection is null
                    ? OutputLossCheck.Prepare(floatWeights.Reference, model.OutputName,
                        fixedBatch => ScaleRefinementStep.HeldOutParts(model, request, synthetic, request.EffectiveRoundingSamples, OutputLossCheck.RoundingSamples, fixedBatch),
                        samples, runner, OutputLossCheck.RoundingSamples, budget)
                    : null;
                rounding = options.Rounding == "brecq"
                    ? BlockReconstructionStep.Apply(floatWeights, model.Folded, options, samples, runner, progress, budget, check)
                    : RoundingStep.Apply(floatWeights, model.Folded, options, samples, runner, progress, budget,
                        selection is null ? null : (w, grams) => selection.WriteLearned(model.Folded, w, grams), check);
                summary = summary with { WeightSqnrDb = RoundingStep.WeightSqnr(floatWeights.Weights, model.Folded, summary.WeightSqnrDb) };
                string unit = rounding.Blocks is { } blocks ? $"{blocks.Count(b => b.Method == "brecq")} block(s) of {rounding.Layers.Count} layer(s)" : $"{rounding.Layers.Count} layer(s)";
                progress.Message($"rounding: {(options.Rounding == "brecq" ? "BRECQ" : "AdaRound")} on {unit} in {rounding.Seconds:0.0} s, output error {rounding.ErrorRatio:P0} of nearest rounding's"
                    + (rounding.Check is { } c ? $"; check kept {c.Kept}: {c.Reverted} layer(s) at nearest codes (model output {c.Loss} on {c.Samples} {(c.ComparedOn == "held_out" ? "held-out" : "fitted")} samples {c.NearestLoss:G4} -> {c.FinalLoss:G4})" : ""));
                multipoint = selection?.Result();
            }
            else multipoint = MultipointStep.Apply(floatWeights, model.Folded, options, samples, runner, progress, budget);
            if (multipoint is not null)
            {
                var sqnr = new SortedDictionary<string, double>(StringComparer.Ordinal);
                foreach (var (k, v) in summary.WeightSqnrDb ?? new Dictionary<string, double>()) sqnr[k] = v;
                foreach (var (k, v) in multipoint.WeightSqnrDb) sqnr[k] = v;
                summary = summary with { WeightSqnrDb = sqnr };
                progress.Message($"multipoint: second terms on {multipoint.Layers.Sum(l => l.TermRows)} output channel(s) of {multipoint.Layers.Count(l => l.TermRows > 0)} layer(s), {multipoint.ExtraFraction:P1} more multiply-adds (budget {multipoint.Budget:P1})");
            }
        }
        OutputBiasCorrectionSummary? outputBias = null;
        if (fp32Folded is not null)
        {
            if (unrefined is null) obcReference = OutputBiasCorrectionStep.Reference(fp32Folded, quantized, model, request, synthetic);
            outputBias = obcReference is null ? null : OutputBiasCorrectionStep.Apply(obcReference, quantized, model, request, progress);
            obcReference = null;
            MemoryUse.Release();
            MemoryUse.Trace("output bias correction");
            if (outputBias is { } ob)
                progress.Message($"output bias correction: {ob.Layers} Conv bias(es) on {ob.Samples} samples, output {ob.Loss} {ob.Before:G4} -> {ob.After:G4}{(ob.Kept ? "" : " (not lower: corrections dropped)")} in {ob.Seconds:0.0} s");
            if (unrefined is { Correction: { } plain } && outputBias is { } refined)
            {
                // Both were fitted to the same samples: they are compared on calibration samples neither saw, where
                // enough are left over.
                var heldOut = HeldOutComparison.Run(fp32Folded, [quantized, unrefined.Model], model, request, synthetic);
                double refinedLoss = heldOut?.Losses[0] ?? refined.Final, plainLoss = heldOut?.Losses[1] ?? plain.Final;
                bool ownScalesWin = plainLoss < refinedLoss;
                outputBias = (ownScalesWin ? plain : refined) with
                {
                    RefinedLoss = refined.Final, UnrefinedLoss = plain.Final, ComparedOn = heldOut is null ? "fitted" : "held_out",
                    HeldOutSamples = heldOut?.Samples, RefinedHeldOutLoss = heldOut?.Losses[0], UnrefinedHeldOutLoss = heldOut?.Losses[1],
                };
                string where = heldOut is null ? "" : $" on {heldOut.Samples} held-out calibration samples";
                if (ownScalesWin)
                {
                    progress.Message($"output bias correction: each tensor's own scales end lower{where} ({plainLoss:G4}) than the refined ones ({refinedLoss:G4}): refinement set aside");
                    quantized = unrefined.Model;
                    summary = unrefined.Summary;
                    parameters = ownScales;
                    refinement = refinement! with { Kept = false };
                }
                else if (heldOut is not null)
                    progress.Message($"output bias correction: the refined scales end lower{where} ({refinedLoss:G4}) than each tensor's own ({plainLoss:G4})");
            }
            unrefined = null;
            fp32Folded = null;
            MemoryUse.Release();
        }
        if (options.Int4WeightStorage)
        {
            // MatMul weights (left float by the plan) run as 4-bit MatMulNBits, packed from their float values.
            var solveClock = System.Diagnostics.Stopwatch.StartNew();
            int nbits = MatMulNBits.Apply(quantized, grams is null ? null
                : (x, w, k, n) => grams.Grams.TryGetValue(x, out var h) ? PtqTool.Rounding.Gptq.Pack(w, k, n, h) : null);
            if (grams is not null)
                progress.Message($"gptq: {nbits} MatMulNBits weight(s) solved on the input Grams of {grams.Samples} sample(s) in {grams.Seconds + solveClock.Elapsed.TotalSeconds:0.0} s");
            int packed = Int4Storage.Apply(quantized, refuse: nbits == 0);
            string rounded = grams is null ? "nearest rounding" : $"GPTQ rounding on the input Grams of {grams.Samples} calibration sample(s)";
            string matmuls = nbits > 0 ? $"{nbits} MatMul weight(s) as 4-bit com.microsoft MatMulNBits (blocks of {MatMulNBits.BlockSize}, {rounded}, activations float into them); " : "";
            if (packed == 0 && nbits == 0) progress.Warn("note: --weight-storage int4: no weight tensor has codes within [-8, 7] (use --weight-bits 4 or --avg-bits); int8 storage kept");
            else summary = summary with { WeightStorage = matmuls + (packed > 0 ? $"int4 storage (opset 21) for {packed} weight tensor(s), int8 for the rest; ONNX Runtime 1.32 dequantizes int4 weights and runs those ops in float" : "int8 storage for the rest") };
            if (nbits > 0) summary = summary with { MatMulNBits = nbits, Int4Rounding = grams is null ? "nearest" : "gptq" };
            if (grams is not null)
            {
                grams = null;  // K² doubles per MatMul input: not held through the evaluation
                MemoryUse.Release();
            }
        }
        if (options.ResolvedEmbeddingBits > 0 && GatherBlockQuantized.Apply(quantized, options.ResolvedEmbeddingBits) is var tables and > 0)
            summary = summary with
            {
                QuantizedTables = tables,
                WeightStorage = summary.WeightStorage + $"; {tables} embedding table(s) as {options.ResolvedEmbeddingBits}-bit com.microsoft GatherBlockQuantized (blocks of {GatherBlockQuantized.BlockSize}, nearest rounding; only the gathered rows are dequantized)",
            };
        var target = new TargetSummary(model.Options.Target, model.Options.Guard, CpuInfo.This);
        ModelMetadata.Write(quantized, target, options, summary);

        // What ONNX Runtime builds from the QDQ graph here, and whether the target's kernels could saturate on it.
        // The calibration statistics and scale searches are done with: give their memory back before the evaluation
        // sessions are built.
        MemoryUse.Release();
        MemoryUse.Trace("rewrite");
        var optimized = FusedOps.OptimizedGraph(quantized, "quantized model");
        MemoryUse.Trace("optimized graph");
        var saturation = SaturationCheck.Run(quantized, optimized, target.Target);
        var nativeSaturation = target.OnTarget ? saturation : SaturationCheck.Run(quantized, optimized, target.Native);
        if (saturation.CanSaturate)
            progress.Warn($"warning: {saturation.Summary}; the accuracy measured here does not hold on {KernelTargets.Name(target.Target)} (use the target's own --saturation-guard)");
        MemoryUse.Trace("saturation check");

        var measured = EvaluationStep.Run(model.OriginalForRuntime(), quantized, evaluationSet, model.Plan.QdqTensors,
            t => (parameters[t].Scale, parameters[t].ZeroPoint), new RunnerOptions { Threads = request.Threads }, progress, (long)request.MemoryBudgetMiB << 20,
            SentenceEmbedding.MaskInput(model.Inputs, model.OutputShape), gateOnly: request.GateOnly, layerReference: equalizedFloat);
        var (fused, semantic, layers) = (measured.Fused, measured.Exact, measured.Layers);
        MemoryUse.Trace("evaluation");

        // Nothing is written until here: the model, its sidecar and the reports are staged and renamed together.
        using var outputs = AtomicFile.Begin();
        OnnxModelFile.Save(quantized, output);
        if (sidecar is not null) AtomicFile.WriteAllText(sidecar, model.Preprocessing.SidecarJson(request.ModelPath));
        var report = new QuantizationReport
        {
            InputModel = request.ModelPath,
            OutputModel = output,
            Options = options,
            Audio = AudioUsed(request) ? request.Preprocessing.Audio : null,
            AudioRateFound = AudioUsed(request) ? model.AudioRate.Value : null,
            MixedPrecision = mixed,
            Rounding = rounding,
            Multipoint = multipoint,
            Fallback = fallback,
            CalibrationSource = calibrationSource,
            CalibrationSamples = stats.Samples,
            CalibrationSkipped = stats.Skipped,
            ObservedTensors = stats.Tensors.Count,
            FoldedBatchNorms = model.FoldedBatchNorms,
            FoldedAffineOps = model.FoldedAffine.Total,
            EqualizedPairs = model.EqualizedPairs,
            Upgrade = model.Upgrade,
            Normalization = model.Normalization,
            Rewrite = summary,
            FloatOps = model.Plan.FloatOps,
            FloatUnits = model.Plan.FloatUnits,
            Smoothing = smoothing,
            Refinement = refinement,
            OutputBiasCorrection = outputBias,
            MaskNodes = model.Plan.MaskNodes,
            FloatJoins = model.Plan.FloatJoins,
            EvaluationSource = evaluationSet.Source,
            EvaluationSkipped = measured.Skipped,
            Outputs = fused,
            ExactOutputs = semantic,
            Layers = layers,
            Fp32Bytes = new FileInfo(request.ModelPath).Length,
            Int8Bytes = quantized.CalculateSize(),
            WeightBytes = WeightBytes.Of(quantized),
            LatencyBatch = measured.LatencyBatch,
            Fp32LatencyMs = measured.Fp32Ms,
            Int8LatencyMs = measured.Int8Ms,
            Target = target,
            Saturation = saturation,
            NativeSaturation = nativeSaturation,
            OnnxRuntimeOps = FusedOps.Count(optimized),
            MaxDrop = request.MaxDrop,
            PeakRssBytes = MemoryUse.PeakBytes(),
            Gate = gate,
        };
        foreach (var path in request.ReportPaths) ReportWriters.Write(report, path);
        outputs.Commit();
        return report;
    }

    /// <summary>Every output differs from every input and from each other, and can be written: checked before any work.</summary>
    private void CheckPaths(PreparedModel model, string output, string? sidecar)
    {
        var check = new IoCheck()
            .Input(request.ModelPath, "input model")
            .Input(Preprocessing.SidecarPath(request.ModelPath), "input model's sidecar", optional: true);
        foreach (var f in model.ExternalDataFiles) check.Input(f, "input model's external data");
        foreach (var s in request.StatsPaths) check.Input(s, "statistics file");
        request.CheckDataPaths(check);
        check.Output(output, "output model (--out)").Output(sidecar, "output model's sidecar");
        if (model.ExternalDataFiles.Count > 0) check.Output(output + ".data", "output model's external data");
        foreach (var r in request.ReportPaths) check.Output(r, "report (--report)");
        check.Verify();
    }

    /// <summary>The model rewritten with each tensor's own scales and bias-corrected, on a copy of the folded graph.</summary>
    private sealed record UnrefinedCandidate(Onnx.Proto.ModelProto Model, RewriteSummary Summary, OutputBiasCorrectionSummary? Correction);

    /// <param name="reference">Makes the FP32 reference of the correction from the rewritten copy (kept for the other candidate).</param>
    private static UnrefinedCandidate? Unrefined(PreparedModel model, Dictionary<string, Scales.QuantParams> scales, QuantizationOptions options,
        IReadOnlyDictionary<string, double[]> means, Func<Onnx.Proto.ModelProto, OutputBiasCorrectionStep.FloatReference?> reference, QuantizeRequest request, ProgressReporter progress)
    {
        var copy = new OnnxGraph(model.Folded.Model.Clone(), model.Folded.BaseDirectory);
        var plan = Rewrite.Handlers.PlanBuilder.Build(copy, model.Options);
        if (!plan.QdqTensors.ToHashSet(StringComparer.Ordinal).SetEquals(model.Plan.QdqTensors)) return null;
        var summary = QdqRewriter.Apply(copy, plan, scales, options, means);
        var correction = reference(copy.Model) is { } r
            ? OutputBiasCorrectionStep.Apply(r, copy.Model, model, request, progress, "output bias correction (each tensor's own scales)") : null;
        MemoryUse.Release();
        MemoryUse.Trace("output bias correction (unrefined scales)");
        return new UnrefinedCandidate(copy.Model, summary, correction);
    }

    /// <summary>Whether the calibration or evaluation folder holds .wav samples (so the report records how they were read).</summary>
    private static bool AudioUsed(QuantizeRequest request) =>
        new[] { request.CalibDir, request.EvalDir }.Any(d => d is not null && Directory.Exists(d) && SampleFolder.Walk(d).Any(SampleFolder.IsAudio));
}
