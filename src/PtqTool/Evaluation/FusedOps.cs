using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Evaluation;

/// <summary>Which integer kernels ONNX Runtime turned the QDQ model into: it saves its optimized graph, and we read it.</summary>
public static class FusedOps
{
    /// <summary>The graph ONNX Runtime runs for <paramref name="model"/> on this machine (all optimizations, QDQ fusions included).</summary>
    public static ModelProto OptimizedGraph(ModelProto model, string nameForErrors)
    {
        string temp = Path.Combine(Path.GetTempPath(), $"ptq-optimized-{Environment.ProcessId}-{Guid.NewGuid():N}.onnx");
        try
        {
            using (OrtRunner.FromModel(model, new RunnerOptions { OptimizedModelPath = temp, Threads = 1 }, nameForErrors)) { }
            return OnnxModelFile.Load(temp);
        }
        finally
        {
            try { File.Delete(temp); } catch (IOException) { }
        }
    }

    public static SortedDictionary<string, int> Count(ModelProto optimized)
    {
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var n in optimized.Graph.Node) counts[n.OpType] = counts.GetValueOrDefault(n.OpType) + 1;
        return counts;
    }
}
