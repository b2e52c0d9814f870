using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Distill;

/// <summary>
/// Shapes of every activation of a forward slice at given input shapes, from one ONNX Runtime run on zeros with no
/// graph optimization (the gradient graphs need them to size their reverse-mode ops).
/// </summary>
public static class ForwardShapes
{
    /// <param name="forward">The slice's nodes: their first outputs (every output of a Split) are exposed and measured.</param>
    /// <param name="inputs">Every graph input of <paramref name="model"/> with the shape to feed it.</param>
    /// <param name="skip">Outputs not to expose (integer shape arithmetic).</param>
    public static Dictionary<string, int[]> Probe(ModelProto model, IEnumerable<NodeProto> forward, IReadOnlyDictionary<string, int[]> inputs,
        ISet<string>? skip = null, string nameForErrors = "forward slice")
    {
        var probe = new OnnxGraph(model.Clone());
        var names = forward.SelectMany(n => n.OpType == "Split" ? n.Output : n.Output.Take(1))
            .Where(o => o.Length > 0 && (skip is null || !skip.Contains(o))).Distinct().ToList();
        foreach (var t in names) probe.AddOutput(t);
        using var runner = OrtRunner.FromModel(probe.Model, new RunnerOptions { Optimization = Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_DISABLE_ALL }, nameForErrors);
        var feeds = inputs.ToDictionary(kv => kv.Key, kv => new FloatTensor(new float[kv.Value.Aggregate(1, (a, b) => a * b)], kv.Value));
        var shapes = runner.Run(feeds, names).ToDictionary(kv => kv.Key, kv => kv.Value.Shape, StringComparer.Ordinal);
        foreach (var (name, shape) in inputs) shapes[name] = shape;
        return shapes;
    }
}
