using PtqTool.Calibration;
using PtqTool.Data;
using PtqTool.Evaluation;
using PtqTool.Onnx;
using PtqTool.Reports;
using PtqTool.Rewrite;

namespace PtqTool.Pipeline;

/// <summary>`ptq quantize` end to end: prepare → calibrate (or load stats) → choose scales → rewrite → save → evaluate → report.</summary>
public sealed class QuantizeJob(QuantizeRequest request, ProgressReporter progress)
{
    /// <summary>How many evaluation batches the per-layer SQNR uses.</summary>
    public const int LayerBatches = 2;
    /// <summary>Samples compared when there is no --eval folder (taken from the calibration folder).</summary>
    public const int UnlabelledFallbackSamples = 256;

    public QuantizationReport Run()
    {
        request.Validated();
        var model = PreparedModel.Prepare(request, progress.Message);
        var (stats, calibrationSource) = CalibrationStep.Run(model, request, progress);
        var parameters = ActivationParameters.Choose(model.Plan, stats, model.Options);
        var means = stats.Channels.ToDictionary(kv => kv.Key, kv => kv.Value.Means, StringComparer.Ordinal);
        var summary = QdqRewriter.Apply(model.Folded, model.Plan, parameters, model.Options, means);
        var quantized = model.Folded.Model;

        // Load the result in ONNX Runtime before anything is written: a model it rejects is never saved.
        string output = request.ResolvedOutputPath;
        using var int8 = OrtRunner.FromModel(quantized, new RunnerOptions { Threads = request.Threads }, "quantized model");
        OnnxModelFile.Save(quantized, output);
        var original = model.OriginalForRuntime();
        using var fp32 = OrtRunner.FromModel(original, new RunnerOptions { Threads = request.Threads }, request.ModelPath);

        var (evaluation, total, evalSource) = EvaluationBatches(model);
        var batches = new List<SampleBatch>();
        progress.Start("evaluating", total);
        var comparison = OutputComparison.Run(fp32, int8, Keep(evaluation, batches, LayerBatches), progress.Report);
        progress.Finish();
        if (comparison.Samples == 0) throw new PtqException($"{evalSource}: no sample could be read");

        var layers = LayerErrors.Measure(original, quantized, model.Plan.QdqTensors, QdqRewriter.DequantizedName,
            t => (parameters[t].Scale, parameters[t].ZeroPoint), batches, new RunnerOptions { Threads = request.Threads });
        var latencyBatch = batches[0].Input;
        double fp32Ms = Latency.MeanMilliseconds(fp32, latencyBatch);
        double int8Ms = Latency.MeanMilliseconds(int8, latencyBatch);

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
            EvaluationSource = evalSource,
            Outputs = comparison,
            Layers = layers,
            Fp32Bytes = new FileInfo(request.ModelPath).Length,
            Int8Bytes = new FileInfo(output).Length,
            LatencyBatch = latencyBatch.Batch,
            Fp32LatencyMs = fp32Ms,
            Int8LatencyMs = int8Ms,
            Cpu = Latency.CpuFeatures(),
            OnnxRuntimeOps = FusedOps.Count(output),
            MaxDrop = request.MaxDrop,
        };
        foreach (var path in request.ReportPaths) ReportWriters.Write(report, path);
        return report;
    }

    private (IEnumerable<SampleBatch> Batches, int Total, string Source) EvaluationBatches(PreparedModel model)
    {
        if (request.EvalDir is null && request.CalibDir is null && request.Synthetic is not null)
        {
            // Data-free: compare the two models on fresh N(0,1) inputs (no labels to score).
            var samples = new FloatTensor(Distill.ZeroQDistiller.Gaussian(request.Distill.Count * FloatTensor.Count(model.SampleShape), request.Distill.Seed + 1),
                [request.Distill.Count, .. model.SampleShape]);
            return (CalibrationStep.Batches(samples, request.Batch), samples.Batch, "N(0,1) inputs (no --eval given, unlabelled)");
        }
        List<SampleFile> files;
        string source;
        if (request.EvalDir is string dir)
        {
            bool labelled = Directory.Exists(dir) && Directory.GetDirectories(dir).Length > 0;
            files = labelled ? SampleFolder.ListLabelled(dir).Files : SampleFolder.List(dir);
            if (request.EvalLimit is int n) files = Subset.Spread(files, n);
            source = labelled ? $"{dir} (labelled)" : $"{dir} (unlabelled)";
        }
        else if (request.CalibDir is not null)
        {
            files = Subset.Spread(SampleFolder.List(request.CalibDir), request.EvalLimit ?? UnlabelledFallbackSamples);
            source = $"{request.CalibDir} (calibration images, unlabelled)";
        }
        else throw new PtqException("no evaluation data: give --eval DIR (with --stats there are no calibration images to compare on)");
        var reader = new BatchReader(files, model.Preprocessing, model.SampleShape, request.Batch) { Strict = request.Strict };
        return (reader.Read(), files.Count, source);
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
