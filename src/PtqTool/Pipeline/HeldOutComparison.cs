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
        var check = OutputLossCheck.Prepare(fp32, model.OutputName,
            fixedBatch => ScaleRefinementStep.HeldOutParts(model, request, synthetic, fitted, fitted, fixedBatch), [],
            new RunnerOptions { Threads = request.Threads }, fitted, (long)request.MemoryBudgetMiB << 20);
        return check is null ? null : new HeldOutLosses(candidates.Select(check.Loss).ToArray(), check.Samples);
    }
}
