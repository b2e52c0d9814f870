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
public sealed class QuantizeJob(QuantizeRequest request, ProgressReporter progress)
{
    /// <summary>How many evaluation batches the per-layer SQNR uses.</summary>
    public const int LayerBatches = 2;

    public QuantizationReport Run()
    {
        request.Validated();
        var model = PreparedModel.Prepare(request, progress.Warn);
        string output = request.ResolvedOutputPath;
        // The quantized model's sidecar (ptq eval reads it); a report asked for at that very path wins.
        string? sidecar = Preprocessing.SidecarPath(output);
        if (request.ReportPaths.Any(r => Onnx.FileIdentity.Same(r, sidecar)))
        {
            progress.Warn($"note: the report {sidecar} takes the place of the quantized model's preprocessing sidecar; give ptq eval the preprocessing flags");
            sidecar = null;
        }
        CheckPaths(model, output, sidecar);
        // Everything the evaluation needs is checked now, before the calibration work.
        var evaluationSet = EvaluationSet.Resolve(request, model);
        var (stats, calibrationSource) = CalibrationStep.Run(model, request, progress);
        var parameters = ActivationParameters.Choose(model.Plan, stats, model.Options);
        var means = stats.Channels.ToDictionary(kv => kv.Key, kv => kv.Value.Means, StringComparer.Ordinal);
        var summary = QdqRewriter.Apply(model.Folded, model.Plan, parameters, model.Options, means);
        var quantized = model.Folded.Model;
        var target = new TargetSummary(model.Options.Target, model.Options.Guard, CpuInfo.This);
        ModelMetadata.Write(quantized, target, model.Options, summary);

        // What ONNX Runtime builds from the QDQ graph here, and whether the target's kernels could saturate on it.
        var optimized = FusedOps.OptimizedGraph(quantized, "quantized model");
        var saturation = SaturationCheck.Run(quantized, optimized, target.Target);
        var nativeSaturation = target.OnTarget ? saturation : SaturationCheck.Run(quantized, optimized, target.Native);
        if (saturation.CanSaturate)
            progress.Warn($"warning: {saturation.Summary}; the accuracy measured here does not hold on {KernelTargets.Name(target.Target)} (use the target's own --saturation-guard)");

        var runnerOptions = new RunnerOptions { Threads = request.Threads };
        using var int8 = OrtRunner.FromModel(quantized, runnerOptions, "quantized model");
        var original = model.OriginalForRuntime();
        using var fp32 = OrtRunner.FromModel(original, runnerOptions, request.ModelPath);

        var batches = new List<SampleBatch>();
        progress.Start("evaluating", evaluationSet.Total);
        OutputComparison fused, semantic;
        // The unfused session goes before the latency timing below, so its threads do not compete with it.
        using (var exact = OrtRunner.FromModel(quantized, runnerOptions with { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL }, "quantized model"))
            (fused, semantic) = Compare(fp32, int8, exact, Keep(evaluationSet.Batches(), batches, LayerBatches));
        progress.Finish();
        int evalSkipped = evaluationSet.Reader?.Skipped ?? 0;
        foreach (var w in evaluationSet.Reader?.Warnings.Take(5) ?? []) progress.Warn($"warning: skipped {w}");
        if (fused.Samples == 0) throw new PtqException($"{evaluationSet.Source}: no sample could be read ({evalSkipped} skipped)");

        var layers = LayerErrors.Measure(original, quantized, model.Plan.QdqTensors, QdqRewriter.DequantizedName,
            t => (parameters[t].Scale, parameters[t].ZeroPoint), batches, runnerOptions);
        var latencyBatch = batches[0].Input;
        var (fp32Ms, int8Ms) = Latency.CompareMedians(fp32, int8, latencyBatch);

        // Nothing is written until here: the model, its sidecar and the reports are staged and renamed together.
        using var outputs = AtomicFile.Begin();
        OnnxModelFile.Save(quantized, output);
        if (sidecar is not null) AtomicFile.WriteAllText(sidecar, model.Preprocessing.SidecarJson(request.ModelPath));
        var report = new QuantizationReport
        {
            InputModel = request.ModelPath,
            OutputModel = output,
            Options = model.Options,
            CalibrationSource = calibrationSource,
            CalibrationSamples = stats.Samples,
            CalibrationSkipped = stats.Skipped,
            ObservedTensors = stats.Tensors.Count,
            FoldedBatchNorms = model.FoldedBatchNorms,
            Rewrite = summary,
            FloatOps = model.Plan.FloatOps,
            EvaluationSource = evaluationSet.Source,
            EvaluationSkipped = evalSkipped,
            Outputs = fused,
            ExactOutputs = semantic,
            Layers = layers,
            Fp32Bytes = new FileInfo(request.ModelPath).Length,
            Int8Bytes = quantized.CalculateSize(),
            LatencyBatch = latencyBatch.Batch,
            Fp32LatencyMs = fp32Ms,
            Int8LatencyMs = int8Ms,
            Target = target,
            Saturation = saturation,
            NativeSaturation = nativeSaturation,
            OnnxRuntimeOps = FusedOps.Count(optimized),
            MaxDrop = request.MaxDrop,
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
        check.InputFolder(request.CalibDir, "calibration folder").InputFolder(request.EvalDir, "evaluation folder");
        check.Output(output, "output model (--out)").Output(sidecar, "output model's sidecar");
        if (model.ExternalDataFiles.Count > 0) check.Output(output + ".data", "output model's external data");
        foreach (var r in request.ReportPaths) check.Output(r, "report (--report)");
        check.Verify();
    }

    /// <summary>One pass over the evaluation data: FP32 against this CPU's fused integer kernels and against exact QDQ semantics.</summary>
    private (OutputComparison Fused, OutputComparison Exact) Compare(OrtRunner fp32, OrtRunner int8, OrtRunner exact, IEnumerable<SampleBatch> batches)
    {
        var fused = new OutputComparer();
        var semantic = new OutputComparer();
        string output = fp32.OutputNames[0];
        foreach (var batch in batches)
        {
            var f = fp32.Run(batch.Input, [output])[output];
            fused.Add(batch.Labels, f, int8.Run(batch.Input, [output])[output], batch.Files);
            semantic.Add(batch.Labels, f, exact.Run(batch.Input, [output])[output], batch.Files);
            progress.Report(fused.Samples);
        }
        return (fused.Result(), semantic.Result());
    }

    /// <summary>Passes batches through while keeping the first few for the per-layer comparison and latency.</summary>
    private static IEnumerable<SampleBatch> Keep(IEnumerable<SampleBatch> source, List<SampleBatch> kept, int count)
    {
        foreach (var b in source)
        {
            if (kept.Count < count) kept.Add(b);
            yield return b;
        }
    }
}
