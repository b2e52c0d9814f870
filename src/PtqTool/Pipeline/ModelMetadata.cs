using PtqTool.Kernels;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;

namespace PtqTool.Pipeline;

/// <summary>What ptq records in the quantized model's metadata_props: the target, the measuring CPU, the integer ranges used.</summary>
public static class ModelMetadata
{
    public const string Prefix = "ptq.";

    public static void Write(ModelProto model, TargetSummary target, QuantizationOptions options, RewriteSummary rewrite)
    {
        var act = options.ActivationSpec.Range;
        var w = options.WeightSpec.Range;
        string weights = $"{rewrite.WeightStorage} [{w.Min}, {w.Max}] symmetric {(options.PerChannelWeights ? "per-channel" : "per-tensor")}"
            + (options.Guard == SaturationGuard.PairBound ? $", same-signed pairs of the x86 reduction order bounded to {PairBound.Bounds(options.X86ActivationMax).Positive}" : "");
        Set(model, "target", KernelTargets.Name(target.Target));
        Set(model, "saturation_guard", SaturationGuards.Name(target.Guard));
        Set(model, "measured_on", target.MeasuredOn.Describe());
        Set(model, "weights", weights);
        Set(model, "rounding", options.Rounding == "nearest" ? "nearest" : $"{options.Rounding} ({options.RoundingIterations} iterations per {(options.Rounding == "brecq" ? "block" : "layer")}, fit to {options.RoundingTarget} outputs{(options.Rounding == "adaround" && options.RoundingCheck != "off" && options.Multipoint <= 0 ? $", checked per layer on the model output ({options.RoundingCheck})" : "")})");
        if (options.Multipoint > 0) Set(model, "multipoint", $"second weight terms within {options.Multipoint:0.###} of the model's multiply-adds ({options.MultipointForm.ToString().ToLowerInvariant()} form)");
        Set(model, "activations", $"{rewrite.ActivationStorage} [{act.Min}, {act.Max}] {(options.SymmetricActivations ? "symmetric" : "asymmetric")} per-tensor");
        Set(model, "version", typeof(ModelMetadata).Assembly.GetName().Version?.ToString() ?? "");
    }

    public static string? Read(ModelProto model, string key) =>
        model.MetadataProps.FirstOrDefault(p => p.Key == Prefix + key)?.Value;

    private static void Set(ModelProto model, string key, string value)
    {
        var existing = model.MetadataProps.FirstOrDefault(p => p.Key == Prefix + key);
        if (existing is not null) existing.Value = value;
        else model.MetadataProps.Add(new StringStringEntryProto { Key = Prefix + key, Value = value });
    }
}
