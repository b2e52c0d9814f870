using Microsoft.ML.OnnxRuntime;
using PtqTool.Data;
using PtqTool.Evaluation;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Pipeline;

/// <summary>
/// Evaluates a quantized model against its FP32 original: one streaming pass over the evaluation data comparing FP32
/// with this CPU's fused integer kernels and with exact QDQ semantics, latency of both, then the per-layer SQNR on the
/// first batches. Sessions are released as soon as their part is done, so the next part's do not pile up on them.
/// </summary>
public static class EvaluationStep
{
    /// <summary>How many evaluation batches the per-layer SQNR uses, and at most how many samples of them.</summary>
    public const int LayerBatches = 2;
    public const int LayerSamples = 32;
    /// <summary>Samples per run of the unfused (exact QDQ) session.</summary>
    public const int ExactPiece = 8;

    public sealed record Result(OutputComparison Fused, OutputComparison Exact, IReadOnlyList<LayerError> Layers,
        int Skipped, int LatencyBatch, double Fp32Ms, double Int8Ms);

    /// <param name="layerReference">The float model per-layer errors are measured against, where its tensors differ from
    /// <paramref name="original"/>'s of the same names (an equalized graph); null: the original.</param>
    public static Result Run(ModelProto original, ModelProto quantized, EvaluationSet data, IReadOnlyList<string> qdqTensors,
        Func<string, (double Scale, int ZeroPoint)> parameters, RunnerOptions options, ProgressReporter progress, long budgetBytes = OutputGroups.DefaultBudgetBytes,
        string? poolBy = null, bool gateOnly = false, ModelProto? layerReference = null)
    {
        var kept = new List<SampleBatch>();
        OutputComparison fused, exact;
        double fp32Ms, int8Ms;
        // The comparison alternates three sessions batch by batch: with spinning intra-op threads each run would compete
        // with the previous session's idle threads spinning on their cores (measured: the pass took twice as long on the
        // sample ResNet), so these sessions block instead of spinning.
        var alternating = options with { Spinning = false };
        using (var fp32 = OrtRunner.FromModel(original, alternating, "FP32 model"))
        using (var int8 = OrtRunner.FromModel(quantized, alternating, "quantized model"))
        {
            MemoryUse.Trace("evaluation sessions");
            progress.Start("evaluating", data.Total);
            using (var unfused = OrtRunner.FromModel(quantized, alternating with { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL }, "quantized model"))
                (fused, exact) = Compare(fp32, int8, unfused, Keep(data.Batches(), kept, LayerBatches), progress, poolBy);
            progress.Finish();
            MemoryUse.Trace("output comparison");
            foreach (var w in data.Reader?.Warnings.Take(5) ?? []) progress.Warn($"warning: skipped {w}");
            foreach (var note in data.Reader?.Notes ?? []) progress.Message(note);
            if (fused.Samples == 0) throw new PtqException($"{data.Source}: no sample could be read ({data.Reader?.Skipped ?? 0} skipped)");
        }
        MemoryUse.Release();
        // A search step needs the outputs only: no latency, no per-layer errors.
        if (gateOnly) return new Result(fused, exact, [], data.Reader?.Skipped ?? 0, kept[0].Input.Batch, double.NaN, double.NaN);
        // Latency on sessions as ONNX Runtime runs them by default (spinning threads), timed in alternating blocks.
        using (var fp32 = OrtRunner.FromModel(original, options with { Spinning = true }, "FP32 model"))
        using (var int8 = OrtRunner.FromModel(quantized, options with { Spinning = true }, "quantized model"))
            (fp32Ms, int8Ms) = Latency.CompareMedians(fp32, int8, kept[0].Input);
        MemoryUse.Release();
        MemoryUse.Trace("output comparison and latency");
        var layerBatches = new List<SampleBatch>();
        for (int n = 0, i = 0; i < kept.Count && n < LayerSamples; i++)
        {
            int take = Math.Min(kept[i].Input.Batch, LayerSamples - n);
            layerBatches.Add(take == kept[i].Input.Batch ? kept[i] : kept[i] with { Input = kept[i].Input.Slice(0, take) });
            n += take;
        }
        var layers = LayerErrors.Measure(layerReference ?? original, quantized, qdqTensors, Rewrite.QdqRewriter.DequantizedName, parameters, layerBatches, options with { MemoryArena = false }, budgetBytes, MemoryUse.Release);
        MemoryUse.Release();
        return new Result(fused, exact, layers, data.Reader?.Skipped ?? 0, kept[0].Input.Batch, fp32Ms, int8Ms);
    }

    private static (OutputComparison Fused, OutputComparison Exact) Compare(OrtRunner fp32, OrtRunner int8, OrtRunner exact,
        IEnumerable<SampleBatch> batches, ProgressReporter progress, string? poolBy)
    {
        var fused = new OutputComparer(poolBy);
        var semantic = new OutputComparer(poolBy);
        string output = fp32.OutputNames[0];
        foreach (var batch in batches)
        {
            FloatTensor Pool(FloatTensor t) => poolBy is null ? t : SentenceEmbedding.MeanPool(t, batch.Input[poolBy]);
            var f = Pool(fp32.Run(batch.Input, [output])[output]);
            fused.Add(batch.Labels, f, Pool(int8.Run(batch.Input, [output])[output]), batch.Files);
            // The unfused session keeps every dequantized tensor in float: it runs in small pieces, so its memory does
            // not grow with --batch (its outputs per sample are the same either way).
            semantic.Add(batch.Labels, f, Pool(FloatTensor.Concat(OutputGroups.Pieces(batch.Input, ExactPiece).Select(p => exact.Run(p, [output])[output]).ToList())), batch.Files);
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
