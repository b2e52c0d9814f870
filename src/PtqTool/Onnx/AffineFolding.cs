using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>How many constant multiplications and additions <see cref="AffineFolding"/> folded, by rule.</summary>
public sealed record AffineFoldingSummary(int IntoConvOutput, int IntoConvInput, int MergedMuls)
{
    public int Total => IntoConvOutput + IntoConvInput + MergedMuls;
}

/// <summary>
/// Folds multiplications and additions by constants into the Conv next to them, so that they are not quantized as tensors
/// of their own. Exporters leave such nodes behind: PaddleOCR's PP-LCNetV3 blocks (PP-OCRv4/v5) scale and shift every
/// Conv output and every activation by learned scalars ("learnable affine blocks"), and each of them would cost one more
/// requantization, and so one more rounding error, on the way. Every rule is exact in real arithmetic (float rounding of
/// the new weights aside):
/// <list type="bullet">
/// <item>Conv → Mul(c) / Add(c), c a scalar or one value per output channel: W'[o] = c[o]·W[o], b'[o] = c[o]·b[o], or
/// b'[o] = b[o] + c[o].</item>
/// <item>Mul(a) / Add(b), scalars, → Conv without padding: W' = a·W, or b'[o] = b[o] + b·Σ W[o, …]. With zero padding the
/// border outputs would differ (the Conv pads x, not a·x + b), so such Convs are left alone.</item>
/// <item>Mul(a) → Mul(b), scalars: Mul(a·b).</item>
/// </list>
/// A node is folded only where the tensor between it and the Conv feeds nothing else and is not a graph output, and the
/// Conv's weight feeds only that Conv; the folded node's output name is kept, so downstream tensors keep theirs.
/// </summary>
public static class AffineFolding
{
    public static AffineFoldingSummary Fold(OnnxGraph graph)
    {
        int output = 0, input = 0, merged = 0;
        for (bool changed = true; changed;)
        {
            changed = false;
            foreach (var node in graph.Graph.Node.ToList())
            {
                if (node.OpType is not ("Mul" or "Add")) continue;
                if (IntoProducerConv(graph, node)) { output++; changed = true; }
                else if (IntoConsumerConv(graph, node)) { input++; changed = true; }
                else if (IntoNextMul(graph, node)) { merged++; changed = true; }
            }
        }
        if (output + input + merged > 0) graph.SortNodes();
        return new AffineFoldingSummary(output, input, merged);
    }

    /// <summary>The node's variable input and its float constant input, or nulls.</summary>
    private static (string? Variable, float[]? Constant, int[] Shape) Split(OnnxGraph graph, NodeProto node)
    {
        if (node.Input.Count != 2) return (null, null, []);
        for (int i = 0; i < 2; i++)
            if (graph.ConstantValue(node.Input[i]) is { DataType: ElementType.Float } c && graph.ConstantValue(node.Input[1 - i]) is null)
                return (node.Input[1 - i], TensorData.ToFloats(c, graph.BaseDirectory), TensorData.Shape(c));
        return (null, null, []);
    }

    private static bool Single(OnnxGraph graph, string tensor) => graph.Consumers(tensor).Count == 1 && !graph.IsGraphOutput(tensor);

    /// <summary>A Conv whose float weight (and bias, if any) are initializers read by it alone.</summary>
    private static bool OwnWeights(OnnxGraph graph, NodeProto conv) =>
        conv.OpType == "Conv" && graph.Initializer(conv.Input[1]) is { DataType: ElementType.Float } && graph.Consumers(conv.Input[1]).Count == 1
        && (conv.Input.Count < 3 || conv.Input[2].Length == 0 || (graph.Initializer(conv.Input[2]) is { DataType: ElementType.Float } && graph.Consumers(conv.Input[2]).Count == 1));

    /// <summary>
    /// The constant as one value per output channel of a Conv with <paramref name="channels"/> outputs and weight rank
    /// <paramref name="rank"/>: a scalar, or C values laid out along axis 1 of the [N, C, spatial…] output; else null.
    /// </summary>
    private static float[]? PerChannel(float[] c, int[] shape, int channels, int rank)
    {
        // A constant of higher rank would broadcast the output to that rank.
        if (shape.Length > rank) return null;
        if (c.Length == 1) return Enumerable.Repeat(c[0], channels).ToArray();
        if (c.Length != channels) return null;
        // Broadcast right-aligned against the [N, C, spatial…] output (rank = the weight's rank): C must sit at output axis 1.
        int axis = shape.Length - (rank - 1);
        return axis >= 0 && shape[axis] == channels ? c : null;
    }

    /// <summary>Conv → Mul/Add by constants per output channel.</summary>
    private static bool IntoProducerConv(OnnxGraph graph, NodeProto node)
    {
        var (x, c, shape) = Split(graph, node);
        if (x is null || c is null || graph.Producer(x) is not { } conv || !OwnWeights(graph, conv) || !Single(graph, x)) return false;
        var w = graph.Initializer(conv.Input[1])!;
        int channels = (int)w.Dims[0], rank = w.Dims.Count;
        if (PerChannel(c, shape, channels, rank) is not { } k) return false;
        var weights = TensorData.ToFloats(w, graph.BaseDirectory);
        var bias = ConvParameters.Bias(graph, conv, channels);
        int per = weights.Length / channels;
        if (node.OpType == "Mul")
        {
            for (int i = 0; i < weights.Length; i++) weights[i] *= k[i / per];
            for (int o = 0; o < channels; o++) bias[o] *= k[o];
        }
        else
            for (int o = 0; o < channels; o++) bias[o] += k[o];
        ConvParameters.Replace(graph, conv, weights, bias, "affine", node.Output[0]);
        conv.Output[0] = node.Output[0];
        graph.RemoveNode(node);
        RemoveConstants(graph, node);
        return true;
    }

    /// <summary>Mul/Add by a scalar → a Conv without padding.</summary>
    private static bool IntoConsumerConv(OnnxGraph graph, NodeProto node)
    {
        var (x, c, shape) = Split(graph, node);
        if (x is null || c is not { Length: 1 } || !Single(graph, node.Output[0])) return false;
        var conv = graph.Consumers(node.Output[0])[0];
        if (conv.Input[0] != node.Output[0] || !OwnWeights(graph, conv) || Padded(conv)) return false;
        var w = graph.Initializer(conv.Input[1])!;
        if (shape.Length > w.Dims.Count) return false;
        int channels = (int)w.Dims[0];
        var weights = TensorData.ToFloats(w, graph.BaseDirectory);
        var bias = ConvParameters.Bias(graph, conv, channels);
        int per = weights.Length / channels;
        if (node.OpType == "Mul")
            for (int i = 0; i < weights.Length; i++) weights[i] *= c[0];
        else
            for (int o = 0; o < channels; o++)
            {
                double sum = 0;
                for (int j = 0; j < per; j++) sum += weights[o * per + j];
                bias[o] = (float)(bias[o] + c[0] * sum);
            }
        ConvParameters.Replace(graph, conv, weights, bias, "affine", node.Output[0]);
        conv.Input[0] = x;
        graph.RemoveNode(node);
        RemoveConstants(graph, node);
        return true;
    }

    /// <summary>Mul(a) → Mul(b), both by scalars: the first becomes Mul(a·b) and the second goes.</summary>
    private static bool IntoNextMul(OnnxGraph graph, NodeProto node)
    {
        if (node.OpType != "Mul") return false;
        var (x, a, aShape) = Split(graph, node);
        if (x is null || a is not { Length: 1 } || !Single(graph, node.Output[0])) return false;
        var next = graph.Consumers(node.Output[0])[0];
        if (next.OpType != "Mul") return false;
        var (y, b, shape) = Split(graph, next);
        if (y != node.Output[0] || b is not { Length: 1 }) return false;
        string name = graph.UniqueName(node.Output[0] + "_merged_scale");
        // The one of higher rank, so that the product broadcasts x as the pair did.
        graph.AddInitializer(TensorData.FromFloats(name, aShape.Length > shape.Length ? aShape : shape, [a[0] * b[0]]));
        var old = node.Clone();
        node.Input.Clear();
        node.Input.Add(x);
        node.Input.Add(name);
        node.Output[0] = next.Output[0];
        graph.RemoveNode(next);
        RemoveConstants(graph, old);
        RemoveConstants(graph, next);
        return true;
    }

    private static bool Padded(NodeProto conv)
    {
        string autoPad = conv.Attribute.FirstOrDefault(a => a.Name == "auto_pad") is { } a ? a.S.ToStringUtf8() : "NOTSET";
        if (autoPad is not ("NOTSET" or "VALID" or "")) return true;
        return NodeAttributes.GetInts(conv, "pads", []).Any(p => p != 0);
    }

    private static void RemoveConstants(OnnxGraph graph, NodeProto node)
    {
        foreach (var input in node.Input)
            if (graph.ConstantValue(input) is not null) BatchNormFolding.RemoveIfUnused(graph, input);
    }
}
