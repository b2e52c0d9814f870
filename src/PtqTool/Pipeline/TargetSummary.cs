using PtqTool.Kernels;

namespace PtqTool.Pipeline;

/// <summary>The target a model was quantized for, and the CPU its numbers were measured on.</summary>
public sealed record TargetSummary(KernelTarget Target, SaturationGuard Guard, CpuInfo MeasuredOn)
{
    public KernelTarget Native => MeasuredOn.NativeTarget;

    /// <summary>Whether this CPU runs the target's kernels, so its fused accuracy is the target's.</summary>
    public bool OnTarget => Target == Native;
}
