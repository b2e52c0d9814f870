using PtqTool.Evaluation;
using PtqTool.Kernels;
using PtqTool.Onnx;

namespace PtqTool.Pipeline;

/// <summary>`ptq check`: the saturation check of a QDQ model for a target.</summary>
public static class CheckJob
{
    public sealed record Result(string Model, string? RecordedTarget, SaturationReport Report);

    public static Result Run(string modelPath, KernelTarget target)
    {
        var graph = OnnxGraph.Load(modelPath);
        var model = graph.Model.Clone();
        OnnxModelFile.InlineExternalData(model, graph.BaseDirectory);
        var optimized = FusedOps.OptimizedGraph(model, modelPath);
        return new Result(modelPath, ModelMetadata.Read(graph.Model, "target"), SaturationCheck.Run(model, optimized, target));
    }
}
