using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Scales;

namespace PtqTool.Rewrite;

/// <summary>The initializers that hold one quantized activation's scale: its scale, and the Clip bounds of a range narrower than 8 bits.</summary>
public sealed record ActivationScaleNames(string Scale, string? ClipMin, string? ClipMax);

/// <summary>An int32 bias quantized with its layer input's scale: <paramref name="Dequantized"/> = round(b / (s_x·s_w))·s_x·s_w.</summary>
/// <param name="Dequantized">The bias DequantizeLinear's output.</param>
/// <param name="Input">The layer's input activation, whose scale s_x the bias scale is made of.</param>
/// <param name="Bias">The float bias quantized (after bias correction).</param>
/// <param name="WeightScales">s_w per output channel.</param>
public sealed record BiasLink(string Dequantized, string Input, float[] Bias, float[] WeightScales);

/// <summary>
/// A QDQ graph whose activation scales are graph inputs instead of initializers, so one ONNX Runtime session runs the
/// model under any scales (scale refinement measures hundreds of choices). With scales as inputs ONNX Runtime cannot
/// fuse the Q/DQ pairs, so the session computes exact QDQ semantics in float.
/// </summary>
public static class ScaleInputs
{
    public static void Expose(OnnxGraph graph, IReadOnlyDictionary<string, ActivationScaleNames> names)
    {
        foreach (var n in names.Values)
            foreach (var name in new[] { n.Scale, n.ClipMin, n.ClipMax })
                if (name is not null)
                {
                    graph.RemoveInitializer(name);
                    graph.Graph.Input.Add(new ValueInfoProto
                    {
                        Name = name,
                        Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementType.Float, Shape = new TensorShapeProto() } },
                    });
                }
    }

    /// <summary>
    /// Makes each linked bias follow its input's scale as the rewrite would quantize it: the bias DequantizeLinear is
    /// replaced by round(b / (s_x·s_w))·(s_x·s_w) computed in the graph from s_x's initializer (an input after
    /// <see cref="Expose"/>). Without it a searched input scale would be judged with the bias codes of the first scale.
    /// Needs Round (opset 11); older graphs keep their bias codes.
    /// </summary>
    public static void LinkBiases(OnnxGraph graph, IReadOnlyDictionary<string, ActivationScaleNames> names, IEnumerable<BiasLink> links)
    {
        if (graph.OpsetVersion() < 11) return;
        foreach (var link in links)
        {
            if (!names.TryGetValue(link.Input, out var n) || graph.Producer(link.Dequantized) is not { OpType: "DequantizeLinear" } dq) continue;
            graph.RemoveNode(dq);
            string b = graph.UniqueName(link.Dequantized + "_float"), ws = graph.UniqueName(link.Dequantized + "_weight_scale");
            graph.AddInitializer(TensorData.FromFloats(b, [link.Bias.Length], link.Bias));
            graph.AddInitializer(TensorData.FromFloats(ws, [link.WeightScales.Length], link.WeightScales));
            string scale = graph.UniqueName(link.Dequantized + "_scale"), ratio = graph.UniqueName(link.Dequantized + "_ratio"), codes = graph.UniqueName(link.Dequantized + "_codes");
            graph.AddNode(NodeAttributes.Node("Mul", graph.UniqueName(link.Dequantized + "_Mul_scale"), [n.Scale, ws], [scale]));
            graph.AddNode(NodeAttributes.Node("Div", graph.UniqueName(link.Dequantized + "_Div"), [b, scale], [ratio]));
            graph.AddNode(NodeAttributes.Node("Round", graph.UniqueName(link.Dequantized + "_Round"), [ratio], [codes]));
            graph.AddNode(NodeAttributes.Node("Mul", graph.UniqueName(link.Dequantized + "_Mul"), [codes, scale], [link.Dequantized]));
        }
        graph.SortNodes();
    }

    /// <summary>The scalars fed to <see cref="Expose"/>d inputs for these parameters (Clip bounds at the range's ends).</summary>
    public static List<(string Name, FloatTensor Value)> Feed(IReadOnlyDictionary<string, ActivationScaleNames> names, IReadOnlyDictionary<string, QuantParams> parameters, QuantSpec spec)
    {
        var feed = new List<(string, FloatTensor)>();
        foreach (var (tensor, n) in names)
        {
            var p = parameters[tensor];
            feed.Add((n.Scale, Scalar(p.Scale)));
            if (n.ClipMin is not null) feed.Add((n.ClipMin, Scalar((float)p.Scale * (spec.Range.Min - p.ZeroPoint))));
            if (n.ClipMax is not null) feed.Add((n.ClipMax, Scalar((float)p.Scale * (spec.Range.Max - p.ZeroPoint))));
        }
        return feed;
    }

    private static FloatTensor Scalar(double v) => new([(float)v], []);
}
