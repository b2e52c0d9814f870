using PtqTool.Onnx;

namespace PtqTool.Evaluation;

/// <summary>Which integer kernels ONNX Runtime turned the QDQ model into: it saves its optimized graph, and we count op types.</summary>
public static class FusedOps
{
    public static SortedDictionary<string, int> Count(string modelPath)
    {
        string temp = Path.Combine(Path.GetTempPath(), $"ptq-optimized-{Environment.ProcessId}-{Guid.NewGuid():N}.onnx");
        try
        {
            using (OrtRunner.FromFile(modelPath, new RunnerOptions { OptimizedModelPath = temp })) { }
            var model = OnnxModelFile.Load(temp);
            var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
            foreach (var n in model.Graph.Node) counts[n.OpType] = counts.GetValueOrDefault(n.OpType) + 1;
            return counts;
        }
        finally
        {
            try { File.Delete(temp); } catch (IOException) { }
        }
    }
}
