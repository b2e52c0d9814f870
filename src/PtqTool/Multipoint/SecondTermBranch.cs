using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;
using PtqTool.Rounding;
using PtqTool.Scales;

namespace PtqTool.Multipoint;

/// <summary>How a layer's second term is laid out in the graph.</summary>
public enum BranchForm
{
    /// <summary>
    /// A second Conv/Gemm/MatMul over only the chosen output channels, put in place by a one-hot 1×1 Conv (MatMul for
    /// Gemm/MatMul) with codes 1 at scale 1: exact on integer kernels, and a plain conv to ONNX Runtime's layout passes.
    /// </summary>
    Scatter,
    /// <summary>A second Conv/Gemm/MatMul over every output channel (zero codes where no term was chosen).</summary>
    Padded,
    /// <summary>Per layer, the form with fewer multiply-adds per channel: padded where a channel's K inputs are no more than the N channels its placement costs.</summary>
    Auto,
}

/// <summary>
/// Writes a second weight term into a rewritten QDQ graph, as integer ops ONNX Runtime fuses: the layer's own node keeps
/// term 1 (and the bias); a copy of it reads the same quantized input through its own DequantizeLinear and multiplies
/// the term-2 codes; its output gets a Q/DQ pair of its own (symmetric), term 1's output is quantized on the output's
/// range widened by term 2's, and their sum goes to the layer output's QuantizeLinear as before. A layer whose output
/// stays in float (a model's last Gemm) gets the same branches without the activation Q/DQ pairs.
/// </summary>
public static class SecondTermBranch
{
    /// <summary>Why a layer cannot take a second term here, or null when it can.</summary>
    public static string? Unsupported(OnnxGraph graph, NodeProto node, int weightInput)
    {
        if (graph.Producer(node.Input[weightInput]) is not { OpType: "DequantizeLinear" }) return "its weight is not quantized";
        if (graph.Producer(node.Input[0]) is not { OpType: "DequantizeLinear" }) return "its input is not quantized";
        return null;
    }

    /// <summary>The layer output's QuantizeLinear, or null when the output stays in float.</summary>
    public static NodeProto? OutputQuantizer(OnnxGraph graph, NodeProto node) =>
        !graph.IsGraphOutput(node.Output[0]) && graph.Consumers(node.Output[0]) is [{ OpType: "QuantizeLinear" } q] && q.Input.Count >= 3 ? q : null;

    /// <param name="second">Term 2 for the whole weight (codes in the weight's layout, one scale per output channel).</param>
    /// <param name="chosen">The output channels (rows) that get it, ascending.</param>
    /// <param name="secondScale">Term 2's output quantization step (symmetric around <paramref name="secondZeroPoint"/>).</param>
    /// <param name="codeOffset">What the weight's codes are stored with (0 for int8, 128 for uint8 weights).</param>
    public static void Add(OnnxGraph graph, NodeProto node, int weightInput, int[] shape, WeightRows rows, QuantizedWeight second, int[] chosen,
        BranchForm form, float secondScale, int secondZeroPoint, IntegerRange activations, int codeOffset)
    {
        if (Unsupported(graph, node, weightInput) is string why) throw new InvalidOperationException($"{node.Name}: {why}");
        bool padded = form == BranchForm.Padded || chosen.Length == rows.Rows;
        if (!padded && node.OpType == "Conv" && rows.Groups > 1) throw new InvalidOperationException("a grouped Conv takes the padded form");
        var inputDq = graph.Producer(node.Input[0])!;
        var weightDq = graph.Producer(node.Input[weightInput])!;
        string y = node.Output[0];
        var outputQ = OutputQuantizer(graph, node);
        int[] channels = padded ? Enumerable.Range(0, rows.Rows).ToArray() : chosen;
        var chosenSet = new HashSet<int>(chosen);

        // Term 2's codes and scales over the branch's channels (rows not chosen: zero codes).
        int[] branchShape = (int[])shape.Clone();
        int outAxis = rows.RowMajor ? 0 : shape.Length - 1;
        branchShape[outAxis] = channels.Length;
        var branchRows = rows with { Rows = channels.Length, Groups = padded ? rows.Groups : 1 };
        var codes = new int[branchShape.Aggregate(1, (a, b) => a * b)];
        var scales = new float[channels.Length];
        for (int j = 0; j < channels.Length; j++)
        {
            int r = channels[j];
            scales[j] = second.Scales[second.Scales.Length == 1 ? 0 : r];
            if (!chosenSet.Contains(r)) continue;
            for (int k = 0; k < rows.K; k++) codes[branchRows.Index(j, k)] = second.Values[rows.Index(r, k)];
        }
        string w2 = graph.UniqueName(weightDq.Input[0] + "_term2");
        graph.AddInitializer(Codes.Write(TensorData.FromInt8(w2, branchShape, new sbyte[codes.Length]), codes, codeOffset));
        string w2Scale = Initializer(graph, w2 + "_scale", TensorData.FromFloats("", [scales.Length], scales));
        string w2Zero = Initializer(graph, w2 + "_zero_point", codeOffset == 0
            ? TensorData.FromInt8("", [scales.Length], new sbyte[scales.Length])
            : TensorData.FromUInt8("", [scales.Length], Enumerable.Repeat((byte)codeOffset, scales.Length).ToArray()));
        var w2Dq = Node(graph, "DequantizeLinear", [w2, w2Scale, w2Zero], [NodeAttributes.Int("axis", outAxis)]);

        // The branch: its own DequantizeLinear of the same input codes (ONNX Runtime fuses a DQ that feeds one op).
        var x2 = Node(graph, "DequantizeLinear", [.. inputDq.Input], inputDq.Attribute);
        var branch = new NodeProto { OpType = node.OpType, Domain = node.Domain, Name = graph.UniqueName(node.Name + "_term2") };
        branch.Attribute.AddRange(node.Attribute.Where(a => a.Name != "group" || padded).Select(a => a.Clone()));
        branch.Input.Add(x2.Output[0]);
        branch.Input.Add(w2Dq.Output[0]);
        string y2 = graph.UniqueName(y + "_term2");
        branch.Output.Add(y2);
        graph.AddNode(branch);

        bool unsignedActivations = !activations.IsSigned;
        string Scalar(string name, double scale, int zero, out string zeroName)
        {
            zeroName = Initializer(graph, name + "_zero_point", unsignedActivations ? TensorData.FromUInt8("", [], [(byte)zero]) : TensorData.FromInt8("", [], [(sbyte)zero]));
            return Initializer(graph, name + "_scale", TensorData.FromFloats("", [], [(float)scale]));
        }
        // Through a Q/DQ pair when the layer output is quantized (an integer kernel's output), as is otherwise.
        string Requantized(string x, string scale, string zero) => outputQ is null ? x : Dequantized(graph, Quantized(graph, x, scale, zero), scale, zero);
        string y2Scale = Scalar(y2, secondScale, secondZeroPoint, out string y2Zero);
        string term2 = Requantized(y2, y2Scale, y2Zero);
        if (!padded)
        {
            // One-hot placement: output channel c = branch channel j where channels[j] = c, else 0 (codes 1, scale 1).
            int n = rows.Rows, m = channels.Length;
            bool conv = node.OpType == "Conv";
            int[] placeShape = conv ? [n, m, .. Enumerable.Repeat(1, shape.Length - 2)] : [m, n];
            var ones = new int[n * m];
            for (int j = 0; j < m; j++) ones[conv ? channels[j] * m + j : j * n + channels[j]] = 1;
            string e = graph.UniqueName(y + "_placement");
            graph.AddInitializer(TensorData.FromInt8(e, placeShape, ones.Select(v => (sbyte)v).ToArray()));
            string eScale = Initializer(graph, e + "_scale", TensorData.FromFloats("", [], [1f]));
            string eZero = Initializer(graph, e + "_zero_point", TensorData.FromInt8("", [], [0]));
            string eD = Node(graph, "DequantizeLinear", [e, eScale, eZero]).Output[0];
            string placed = Node(graph, conv ? "Conv" : "MatMul", [term2, eD]).Output[0];
            term2 = Requantized(placed, y2Scale, y2Zero);
        }

        string y1 = graph.UniqueName(y + "_term1");
        node.Output[0] = y1;
        string term1 = y1;
        if (outputQ is not null)
        {
            // Term 1 is quantized before the sum on the output's range widened by term 2's on both sides. Not on the
            // output's own: where a Relu was folded into the output's zero point, clipping term 1 at 0 first would let
            // term 2 lift negative pre-activations above 0; below −(term 2's range) clipping is harmless again.
            double s = graph.InitializerFloats(outputQ.Input[1])[0];
            int z = Codes.Read(graph.Initializer(outputQ.Input[2])!, out int zeroOffset)[0] + zeroOffset;
            double reach = secondScale * (activations.Max - secondZeroPoint);
            var p = RangeMapping.FromRange(s * (activations.Min - z) - reach, s * (activations.Max - z) + reach, new QuantSpec(activations, Symmetric: false));
            string y1Scale = Scalar(y1, p.Scale, p.ZeroPoint, out string y1Zero);
            term1 = Requantized(y1, y1Scale, y1Zero);
        }
        Node(graph, "Add", [term1, term2], output: y);
    }

    private static string Initializer(OnnxGraph graph, string name, TensorProto tensor)
    {
        tensor.Name = graph.UniqueName(name);
        graph.AddInitializer(tensor);
        return tensor.Name;
    }

    private static string Quantized(OnnxGraph graph, string x, string scale, string zero) => Node(graph, "QuantizeLinear", [x, scale, zero]).Output[0];

    private static string Dequantized(OnnxGraph graph, string q, string scale, string zero) => Node(graph, "DequantizeLinear", [q, scale, zero]).Output[0];

    private static NodeProto Node(OnnxGraph graph, string op, string[] inputs, IEnumerable<AttributeProto>? attributes = null, string? output = null)
    {
        output ??= graph.UniqueName(inputs[0] + "_" + op);
        var node = NodeAttributes.Node(op, graph.UniqueName(output + "_" + op + "_node"), inputs, [output], attributes?.Select(a => a.Clone()).ToArray() ?? []);
        graph.AddNode(node);
        return node;
    }
}
