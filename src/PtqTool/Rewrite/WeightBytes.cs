using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite;

/// <summary>
/// The bytes a quantized model spends on its integer weights: every 8- or 4-bit initializer of rank ≥ 2 that a
/// DequantizeLinear reads (int4 packed two per byte, second multipoint terms included). What is left of the file
/// (int32 biases, scales, zero points, the graph) does not depend on the weights' bit widths.
/// </summary>
public static class WeightBytes
{
    public static long Of(ModelProto model)
    {
        var graph = new OnnxGraph(model);
        var counted = new HashSet<string>(StringComparer.Ordinal);
        long bytes = 0;
        foreach (var dq in graph.Graph.Node.Where(n => n.OpType == "DequantizeLinear"))
        {
            if (graph.Initializer(dq.Input[0]) is not { } t || t.Dims.Count < 2 || !counted.Add(t.Name)) continue;
            if (t.DataType is not (ElementType.Int8 or ElementType.UInt8 or ElementType.Int4 or ElementType.UInt4)) continue;
            long n = TensorData.ElementCount(t);
            bytes += t.DataType is ElementType.Int4 or ElementType.UInt4 ? (n + 1) / 2 : n;
        }
        return bytes;
    }
}
