using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite;

/// <summary>
/// `--weight-storage int4`: weights whose codes fit [−8, 7] are stored as ONNX INT4 (two per byte) and the model's
/// opset is raised from 13 to 21, the first with int4 DequantizeLinear. Only graphs whose every op kept its meaning
/// from 13 to 21 (with the attributes ptq and common exporters write) are raised; any other op is refused by name.
/// ONNX Runtime 1.31 and 1.32 have no integer kernel for int4 weights: it dequantizes them and runs the op in float (measured
/// in docs/mixed-precision.md), so this buys file size, not speed.
/// </summary>
public static class Int4Storage
{
    /// <summary>Bits a weight of this width occupies with int4 storage: 4 up to 4 bits (packed), 8 above (int8).</summary>
    public static int StoredBits(int bits) => bits <= 4 ? 4 : 8;

    /// <summary>Ops whose definition between opsets 13 and 21 only gained types or optional inputs/attributes whose defaults keep the old behaviour (ONNX operator changelog).</summary>
    private static readonly HashSet<string> Unchanged = new(StringComparer.Ordinal)
    {
        "QuantizeLinear", "DequantizeLinear", "Conv", "ConvTranspose", "Gemm", "MatMul", "Relu", "LeakyRelu", "Clip",
        "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softmax", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log",
        "Abs", "Neg", "Erf", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Flatten", "Reshape",
        "Transpose", "Concat", "Squeeze", "Unsqueeze", "Slice", "Gather", "Shape", "Cast", "Pad", "Resize", "Where",
        "Equal", "Greater", "Less", "Not", "And", "Or", "Expand", "Tile", "ConstantOfShape", "ReduceSum", "Max", "Min",
        "Sum", "Mean", "ArgMax", "TopK", "Identity", "BatchNormalization",
    };

    /// <param name="refuse">Refuse a graph that cannot be raised to opset 21 (else leave it at int8 storage and return 0).</param>
    /// <returns>How many weight tensors went to int4.</returns>
    public static int Apply(ModelProto model, bool refuse = true)
    {
        var graph = new OnnxGraph(model);
        long opset = graph.OpsetVersion();
        var other = model.Graph.Node.FirstOrDefault(n => !(n.Domain == MatMulNBits.Domain && n.OpType == "MatMulNBits") && (n.Domain is not ("" or "ai.onnx") || !Unchanged.Contains(n.OpType)));
        if (!refuse && (opset != 13 || other is not null)) return 0;
        if (opset != 13)
            throw new PtqException($"--weight-storage int4: the quantized model has opset {opset}; int4 storage raises opset 13 to 21 only");
        if (other is not null)
            throw new PtqException($"--weight-storage int4: op {other.OpType} ('{other.Name}') may change meaning between opsets 13 and 21; use --weight-storage int8");
        int converted = 0;
        foreach (var node in model.Graph.Node.Where(n => n.OpType == "DequantizeLinear").ToList())
        {
            var codes = graph.Initializer(node.Input[0]);
            if (codes is null || codes.DataType != ElementType.Int8) continue;
            // Only tensors read by DequantizeLinear alone (a shared initializer must keep one type for every reader).
            if (graph.Consumers(node.Input[0]).Any(c => c.OpType != "DequantizeLinear")) continue;
            var values = TensorData.ToFloats(codes);
            if (values.Any(v => v < -8 || v > 7)) continue;
            Replace(graph, codes, values);
            if (node.Input.Count > 2 && graph.Initializer(node.Input[2]) is { DataType: ElementType.Int8 } zero) Replace(graph, zero, TensorData.ToFloats(zero));
            converted++;
        }
        if (converted == 0) return 0;
        foreach (var o in model.OpsetImport) if (o.Domain is "" or "ai.onnx") o.Version = 21;
        // INT4 arrived with IR version 10.
        model.IrVersion = Math.Max(model.IrVersion, 10);
        return converted;
    }

    private static void Replace(OnnxGraph graph, TensorProto tensor, float[] values) =>
        graph.ReplaceInitializer(TensorData.FromInt4(tensor.Name, TensorData.Shape(tensor), values.Select(v => (int)v).ToArray(), signed: true));
}
