using System.Security.Cryptography;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Pipeline;

/// <summary>Checks on an input model before any work: not already quantized, finite weights, its external data files.</summary>
public static class ModelChecks
{
    private static readonly HashSet<string> QuantizedOps =
        ["QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "QGemm", "QLinearAdd"];

    /// <summary>Refuses a model that is already quantized: quantizing it again would stack a second grid on the first.</summary>
    public static void NotQuantized(OnnxGraph graph, string path)
    {
        var found = graph.Graph.Node.Where(n => QuantizedOps.Contains(n.OpType)).GroupBy(n => n.OpType).ToList();
        if (found.Count > 0)
            throw new PtqException($"{path}: is already quantized ({string.Join(", ", found.Select(g => $"{g.Count()} {g.Key}"))}); quantize the FP32 original instead");
    }

    /// <summary>Every float initializer and Constant is finite: NaN/Inf weights make every score meaningless.</summary>
    public static void FiniteWeights(OnnxGraph graph, string path)
    {
        foreach (var t in Tensors(graph))
        {
            if (t.DataType is not (ElementType.Float or ElementType.Double or ElementType.Float16)) continue;
            var values = TensorData.ToFloats(t, graph.BaseDirectory);
            int bad = values.Count(v => !float.IsFinite(v));
            if (bad > 0)
                throw new PtqException($"{path}: tensor '{t.Name}' holds {bad} NaN/Inf value(s) of {values.Length}; the FP32 model itself is broken");
        }
    }

    /// <summary>The distinct external data files the model reads (checked to stay inside its folder).</summary>
    public static List<string> ExternalDataFiles(OnnxGraph graph) =>
        OnnxModelFile.AllTensors(graph.Graph)
            .Where(t => t.DataLocation == TensorProto.Types.DataLocation.External)
            .Select(t => Path.GetFullPath(TensorData.ExternalLocation(t, graph.BaseDirectory).Path))
            .Distinct(StringComparer.Ordinal).ToList();

    /// <summary>SHA-256 over the model file and, in order, every external data file it reads (statistics files carry it).</summary>
    public static string Digest(string modelPath, IReadOnlyList<string> externalData)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in externalData.Prepend(modelPath))
        {
            using var stream = File.OpenRead(file);
            var buffer = new byte[1 << 16];
            int read;
            while ((read = stream.Read(buffer)) > 0) sha.AppendData(buffer, 0, read);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    private static IEnumerable<TensorProto> Tensors(OnnxGraph graph)
    {
        foreach (var t in graph.Graph.Initializer) yield return t;
        foreach (var n in graph.Graph.Node)
            if (n.OpType == "Constant" && n.Attribute.FirstOrDefault(a => a.Name == "value")?.T is { } v) yield return v;
    }
}
