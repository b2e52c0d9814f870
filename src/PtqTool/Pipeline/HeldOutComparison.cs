using Microsoft.ML.OnnxRuntime;
using PtqTool.Evaluation;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Pipeline;

/// <summary>Each candidate's output loss against FP32 on calibration samples none of them was fitted on.</summary>
/// <param name="Losses">By candidate, in the order given.</param>
internal sealed record HeldOutLosses(double[] Losses, int Samples);

/// <summary>
/// Compares quantized candidates (the refined scales and each tensor's own, both bias-corrected) on the calibration
/// samples that neither the refinement nor the bias correction measured on: both fitted their choices to the same
/// samples, so comparing them there favours whichever fitted harder (on the PaddleOCR recognizer the refined
/// candidate won by 2 % on those samples and lost by 1.8 dB on the evaluation set). The candidates run with graph
/// optimizations off (exact QDQ semantics), as the correction measures them.
/// </summary>
internal static class HeldOutComparison
{
    /// <summary>Fewer held-out samples than this tell too little: the comparison stays on the fitted samples.</summary>
    public const int MinSamples = 16;

    /// <returns>Null when fewer than <see cref="MinSamples"/> calibration samples are left over.</returns>
    public static HeldOutLosses? Run(ModelProto fp32, IReadOnlyList<ModelProto> candidates, PreparedModel model, QuantizeRequest request, FloatTensor? synthetic)
    {
        int fitted = request.RefineSamples ?? ScaleRefinementStep.DefaultSamples;
        var runner = new RunnerOptions { Threads = request.Threads };
        string output = model.OutputName;
        var batches = new List<ModelFeed>();
        var references = new List<FloatTensor>();
        long budget = (long)request.MemoryBudgetMiB << 20, held = 0;
        using (var session = OrtRunner.FromModel(fp32, runner, "FP32 model (held-out samples)"))
            foreach (var part in ScaleRefinementStep.HeldOutParts(model, request, synthetic, fitted, fitted, session.FixedBatch))
            {
                var reference = session.Run(part, [output])[output];
                // The samples and their FP32 outputs are held while the candidates run: bounded by --memory-budget.
                long bytes = 4L * (reference.Data.Length + part.Tensors.Sum(t => (long)t.Data.Length));
                if (batches.Count > 0 && held + bytes > budget) break;
                held += bytes;
                batches.Add(part);
                references.Add(reference);
            }
        int samples = batches.Sum(b => b.Batch);
        if (samples < MinSamples) return null;
        var kind = OutputLoss.For(references[0].Shape);
        var losses = new double[candidates.Count];
        for (int c = 0; c < candidates.Count; c++)
        {
            var loss = new OutputLoss(kind);
            using var session = OrtRunner.FromModel(candidates[c], runner with { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL }, "quantized candidate (held-out samples)");
            for (int i = 0; i < batches.Count; i++) loss.Add(references[i], session.Run(batches[i], [output])[output]);
            losses[c] = loss.Value;
        }
        return new HeldOutLosses(losses, samples);
    }
}
