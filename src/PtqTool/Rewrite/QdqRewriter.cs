using PtqTool.Kernels;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Scales;
using PtqTool.Scales.Losses;

namespace PtqTool.Rewrite;

/// <summary>What the rewrite did, for the report.</summary>
public sealed record RewriteSummary(int QdqPairs, int QuantizedWeights, int QuantizedBiases, int CorrectedBiases, int FoldedActivations, int RaisedWeightScales, string WeightStorage, string ActivationStorage,
    int BoundedWeightPairs = 0, IReadOnlyDictionary<string, double>? WeightSqnrDb = null, int QuantizedTables = 0, int MatMulNBits = 0, string? Int4Rounding = null);

/// <summary>
/// Applies a <see cref="QuantizationPlan"/> with chosen activation parameters to a (BatchNormalization-folded) graph, in
/// ONNX Runtime's QDQ conventions: each quantized activation tensor T gets one QuantizeLinear and a DequantizeLinear
/// per consumer (the first writes "T_dequantized"); weights become integer initializers feeding DequantizeLinear (per channel, symmetric);
/// biases become int32 with scale x_scale·w_scale and zero point 0. Bit widths under 8 are stored in int8/uint8
/// tensors with the narrower range (activations are clipped to it first), since int4 QDQ needs opset 21.
/// </summary>
public static class QdqRewriter
{
    public static string DequantizedName(string tensor) => tensor + "_dequantized";

    /// <param name="inputMeans">Per-channel means of weighted ops' inputs; when given (and enabled), biases are corrected.</param>
    /// <param name="scaleNames">Receives, per quantized activation tensor, the initializers that hold its scale (<see cref="ScaleInputs"/>).</param>
    public static RewriteSummary Apply(OnnxGraph graph, QuantizationPlan plan, IReadOnlyDictionary<string, QuantParams> activations, QuantizationOptions options,
        IReadOnlyDictionary<string, double[]>? inputMeans = null, IDictionary<string, ActivationScaleNames>? scaleNames = null, IList<BiasLink>? biasLinks = null)
    {
        var actSpec = options.ActivationSpec;
        foreach (var relu in plan.FoldedActivations)
        {
            var producer = graph.Producer(relu.Input[0])!;
            int index = producer.Output.IndexOf(relu.Input[0]);
            graph.RemoveNode(relu);
            producer.Output[index] = relu.Output[0];
        }

        var weightLoss = ScaleLosses.Create(options.ResolvedWeightLoss, options.Percentile);
        var done = new Dictionary<string, (string Dequantized, QuantizedWeight Weight)>(StringComparer.Ordinal);
        int biases = 0, raised = 0, corrected = 0, bounded = 0;
        bool unsignedWeights = options.Guard == SaturationGuard.UnsignedWeights;
        var weightSqnr = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var use in plan.Weights)
        {
            var node = use.Node;
            string wName = node.Input[use.InputIndex];
            var wTensor = graph.Initializer(wName)!;
            string input = node.Input[0];
            double inputScale = activations.TryGetValue(input, out var xp) ? xp.Scale : 0;
            float[]? bias = use.BiasIndex is int bi ? graph.InitializerFloats(node.Input[bi]) : null;
            float[] weights = graph.InitializerFloats(wName);
            if (!done.TryGetValue(wName, out var qw))
            {
                var shape = TensorData.Shape(wTensor);
                int axis = options.PerChannelWeights ? use.Axis : -1;
                var constraint = options.Guard == SaturationGuard.PairBound ? new PairConstraint(Reduction(node, shape), options.X86ActivationMax) : null;
                var q = WeightQuantizer.Quantize(weights, shape, axis, weightLoss, options.WeightSpecFor(wName), bias, inputScale, constraint);
                raised += q.RaisedChannels;
                bounded += q.BoundedPairs;
                weightSqnr[wName] = WeightSqnr(weights, q, shape);
                string dq = AddDequantized(graph, wName, shape, q.Values, q.Scales, q.Axis, unsignedWeights);
                qw = (dq, q);
                done[wName] = qw;
            }
            if (bias is not null && options.BiasCorrection && inputMeans is not null && inputMeans.TryGetValue(input, out var means)
                && BiasCorrection.Correct(node, weights, TensorData.Shape(wTensor), qw.Weight, bias, means) is { } fixedBias)
            {
                bias = fixedBias;
                corrected++;
            }
            node.Input[use.InputIndex] = qw.Dequantized;
            if (use.BiasIndex is int b && bias is not null && inputScale > 0)
            {
                var (values, scales) = WeightQuantizer.QuantizeBias(bias, (float)inputScale, qw.Weight.Scales);
                string bName = node.Input[b];
                node.Input[b] = AddDequantizedBias(graph, bName, values, scales);
                biasLinks?.Add(new BiasLink(node.Input[b], input, bias, qw.Weight.Scales.Length == values.Length ? qw.Weight.Scales : Enumerable.Repeat(qw.Weight.Scales[0], values.Length).ToArray()));
                biases++;
            }
        }

        foreach (var (node, index) in plan.ConstantInputs)
            node.Input[index] = AddDequantizedConstant(graph, node.Input[index], actSpec);

        int pairs = 0;
        var quantizedOf = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string tensor in plan.QdqTensors)
        {
            if (!activations.TryGetValue(tensor, out var p)) throw new InvalidOperationException($"no parameters for '{tensor}'");
            if (plan.IsScaledCopy(tensor) && quantizedOf.TryGetValue(plan.ScaledCopies[tensor].Source, out var codes))
            {
                quantizedOf[tensor] = codes;
                string copyScale = ReadScaledCopy(graph, tensor, plan.ScaledCopies[tensor].Mul, codes, p, actSpec);
                scaleNames?.Add(tensor, new ActivationScaleNames(copyScale, null, null));
                continue;
            }
            (quantizedOf[tensor], var names) = InsertQdq(graph, tensor, p, actSpec);
            scaleNames?.Add(tensor, names);
            pairs++;
        }
        foreach (var t in graph.Graph.Initializer.Select(t => t.Name).ToList()) BatchNormFolding.RemoveIfUnused(graph, t);
        graph.SortNodes();
        string weightStorage = (options.WeightBits, unsignedWeights) switch
        {
            (8, false) => "int8",
            (8, true) => "uint8 (zero point 128)",
            (var b, var u) => $"int{b} values in {(u ? "uint8" : "int8")} storage (int4 QDQ needs opset 21; this model has opset {graph.OpsetVersion()})",
        };
        string actStorage = (options.ActivationBits, options.UnsignedActivations) switch
        {
            (8, false) => "int8",
            (8, true) => "uint8",
            (var b, var u) => $"{(u ? "uint" : "int")}{b} simulated: Clip to the {b}-bit range, then {(u ? "uint8" : "int8")} QuantizeLinear",
        };
        return new RewriteSummary(pairs, done.Count, biases, corrected, plan.FoldedActivations.Count, raised, weightStorage, actStorage, bounded, weightSqnr);
    }

    /// <summary>
    /// y = k·x without a Mul: y's consumers dequantize x's codes with y's parameters (scale k·s_x, x's zero point);
    /// the Mul and the DequantizeLinear that fed it go.
    /// </summary>
    /// <returns>The scale initializer y's consumers dequantize with.</returns>
    private static string ReadScaledCopy(OnnxGraph graph, string tensor, NodeProto mul, string codes, QuantParams p, QuantSpec spec)
    {
        var feeding = mul.Input.Select(graph.Producer).Where(n => n is { OpType: "DequantizeLinear" }).ToList();
        graph.RemoveNode(mul);
        foreach (var dq in feeding)
            if (graph.Consumers(dq!.Output[0]).Count == 0) graph.RemoveNode(dq);
        var (scale, zero) = AddScaleAndZero(graph, tensor, p, spec);
        var consumers = graph.Consumers(tensor).ToList();
        foreach (var c in consumers)
        {
            string dequantized = graph.UniqueName(DequantizedName(tensor));
            graph.AddNode(NodeAttributes.Node("DequantizeLinear", graph.UniqueName(tensor + "_DequantizeLinear"), [codes, scale, zero], [dequantized]));
            for (int i = 0; i < c.Input.Count; i++)
                if (c.Input[i] == tensor) c.Input[i] = dequantized;
        }
        return scale;
    }

    private static (string Scale, string Zero) AddScaleAndZero(OnnxGraph graph, string tensor, QuantParams p, QuantSpec spec)
    {
        string scale = graph.UniqueName(tensor + "_scale");
        string zero = graph.UniqueName(tensor + "_zero_point");
        graph.AddInitializer(TensorData.FromFloats(scale, [], [(float)p.Scale]));
        graph.AddInitializer(spec.Range.IsSigned
            ? TensorData.FromInt8(zero, [], [(sbyte)p.ZeroPoint])
            : TensorData.FromUInt8(zero, [], [(byte)p.ZeroPoint]));
        return (scale, zero);
    }

    /// <returns>The quantized tensor's name and the initializers that hold its scale.</returns>
    private static (string Quantized, ActivationScaleNames Names) InsertQdq(OnnxGraph graph, string tensor, QuantParams p, QuantSpec spec)
    {
        bool unsigned = !spec.Range.IsSigned;
        var (scale, zero) = AddScaleAndZero(graph, tensor, p, spec);
        string source = tensor;
        string? clipMin = null, clipMax = null;
        var consumers = graph.Consumers(tensor).ToList();
        var added = new List<NodeProto>();
        bool narrow = spec.Range != (unsigned ? IntegerRange.UInt8 : IntegerRange.Int8);
        if (narrow)
        {
            string lo = graph.UniqueName(tensor + "_clip_min"), hi = graph.UniqueName(tensor + "_clip_max");
            float s = (float)p.Scale;
            graph.AddInitializer(TensorData.FromFloats(lo, [], [s * (spec.Range.Min - p.ZeroPoint)]));
            graph.AddInitializer(TensorData.FromFloats(hi, [], [s * (spec.Range.Max - p.ZeroPoint)]));
            (clipMin, clipMax) = (lo, hi);
            source = graph.UniqueName(tensor + "_clipped");
            added.Add(NodeAttributes.Node("Clip", graph.UniqueName(tensor + "_Clip"), [tensor, lo, hi], [source]));
        }
        string quantized = graph.UniqueName(tensor + "_quantized");
        added.Add(NodeAttributes.Node("QuantizeLinear", graph.UniqueName(tensor + "_QuantizeLinear"), [source, scale, zero], [quantized]));
        // One DequantizeLinear per consumer: ONNX Runtime fuses DQ → op → Q into an integer kernel only when the DQ
        // feeds that op alone. The first is named T_dequantized (per-layer error reports read it).
        for (int k = 0; k < consumers.Count; k++)
        {
            string dequantized = graph.UniqueName(DequantizedName(tensor));
            added.Add(NodeAttributes.Node("DequantizeLinear", graph.UniqueName(tensor + "_DequantizeLinear"), [quantized, scale, zero], [dequantized]));
            var c = consumers[k];
            for (int i = 0; i < c.Input.Count; i++)
                if (c.Input[i] == tensor) c.Input[i] = dequantized;
        }
        foreach (var n in added) graph.AddNode(n);
        return (quantized, new ActivationScaleNames(scale, clipMin, clipMax));
    }

    /// <summary>10·log10(Σw² / Σ(w − s·q)²) of one weight tensor against its dequantized values.</summary>
    public static double WeightSqnr(float[] w, QuantizedWeight q, int[] shape)
    {
        int channels = q.Axis >= 0 ? shape[q.Axis] : 1, inner = 1;
        if (q.Axis >= 0) for (int i = q.Axis + 1; i < shape.Length; i++) inner *= shape[i];
        double signal = 0, noise = 0;
        for (int i = 0; i < w.Length; i++)
        {
            double e = w[i] - q.Scales[q.Axis >= 0 ? (i / inner) % channels : 0] * (double)q.Values[i];
            signal += w[i] * (double)w[i];
            noise += e * e;
        }
        return Sqnr.Decibels(signal, noise);
    }

    /// <summary>
    /// The order in which ONNX Runtime's x86 kernels reduce over this node's weight (see <see cref="ReductionLayout"/>):
    /// Conv by kernel position then input channel, Gemm/MatMul along K.
    /// </summary>
    public static ReductionLayout Reduction(NodeProto node, int[] shape) => node.OpType switch
    {
        "Conv" => ReductionLayout.Conv(shape, (int)NodeAttributes.GetInt(node, "group", 1)),
        "Gemm" when NodeAttributes.GetInt(node, "transB", 0) == 1 => ReductionLayout.NByK(shape[0], shape[1]),
        _ when shape.Length == 2 => ReductionLayout.KByN(shape[0], shape[1]),
        _ => ReductionLayout.KByN(shape[..^1].Aggregate(1, (a, b) => a * b), shape[^1]),
    };

    private static string AddDequantized(OnnxGraph graph, string weight, int[] shape, int[] values, float[] scales, int axis, bool unsigned)
    {
        string q = graph.UniqueName(weight + "_quantized");
        string scale = graph.UniqueName(weight + "_scale");
        string zero = graph.UniqueName(weight + "_zero_point");
        string dq = graph.UniqueName(DequantizedName(weight));
        int[] paramShape = axis >= 0 ? [scales.Length] : [];
        if (unsigned)
        {
            // Symmetric weights stored as u8 around 128: the same real values, run by x86's u8×u8 kernels.
            graph.AddInitializer(TensorData.FromUInt8(q, shape, values.Select(v => (byte)(v + 128)).ToArray()));
            graph.AddInitializer(TensorData.FromUInt8(zero, paramShape, Enumerable.Repeat((byte)128, scales.Length).ToArray()));
        }
        else
        {
            graph.AddInitializer(TensorData.FromInt8(q, shape, values.Select(v => (sbyte)v).ToArray()));
            graph.AddInitializer(TensorData.FromInt8(zero, paramShape, new sbyte[scales.Length]));
        }
        graph.AddInitializer(TensorData.FromFloats(scale, paramShape, scales));
        var node = NodeAttributes.Node("DequantizeLinear", graph.UniqueName(weight + "_DequantizeLinear"), [q, scale, zero], [dq]);
        if (axis >= 0) node.Attribute.Add(NodeAttributes.Int("axis", axis));
        graph.AddNode(node);
        return dq;
    }

    /// <summary>A float constant as an 8-bit initializer of the activations' type (min-max over its values, 0 included: a scalar is exact) behind its own DequantizeLinear.</summary>
    private static string AddDequantizedConstant(OnnxGraph graph, string constant, QuantSpec actSpec)
    {
        var tensor = graph.ConstantValue(constant)!;
        var values = TensorData.ToFloats(tensor, graph.BaseDirectory);
        bool unsigned = !actSpec.Range.IsSigned;
        var range = unsigned ? IntegerRange.UInt8 : IntegerRange.Int8;
        var p = RangeMapping.FromRange(values.Min(), values.Max(), new QuantSpec(range, Symmetric: false));
        var codes = values.Select(v => UniformQuantizer.Quantize(v, p.Scale, p.ZeroPoint, range)).ToArray();
        string q = graph.UniqueName(constant + "_quantized"), scale = graph.UniqueName(constant + "_scale"), zero = graph.UniqueName(constant + "_zero_point");
        var shape = TensorData.Shape(tensor);
        graph.AddInitializer(unsigned ? TensorData.FromUInt8(q, shape, codes.Select(c => (byte)c).ToArray()) : TensorData.FromInt8(q, shape, codes.Select(c => (sbyte)c).ToArray()));
        graph.AddInitializer(TensorData.FromFloats(scale, [], [(float)p.Scale]));
        graph.AddInitializer(unsigned ? TensorData.FromUInt8(zero, [], [(byte)p.ZeroPoint]) : TensorData.FromInt8(zero, [], [(sbyte)p.ZeroPoint]));
        string dq = graph.UniqueName(DequantizedName(constant));
        graph.AddNode(NodeAttributes.Node("DequantizeLinear", graph.UniqueName(constant + "_DequantizeLinear"), [q, scale, zero], [dq]));
        return dq;
    }

    private static string AddDequantizedBias(OnnxGraph graph, string bias, int[] values, float[] scales)
    {
        string q = graph.UniqueName(bias + "_quantized");
        string scale = graph.UniqueName(bias + "_scale");
        string zero = graph.UniqueName(bias + "_zero_point");
        string dq = graph.UniqueName(DequantizedName(bias));
        graph.AddInitializer(TensorData.FromInt32(q, [values.Length], values));
        graph.AddInitializer(TensorData.FromFloats(scale, [scales.Length], scales));
        graph.AddInitializer(TensorData.FromInt32(zero, [scales.Length], new int[scales.Length]));
        var node = NodeAttributes.Node("DequantizeLinear", graph.UniqueName(bias + "_DequantizeLinear"), [q, scale, zero], [dq]);
        node.Attribute.Add(NodeAttributes.Int("axis", 0));
        graph.AddNode(node);
        return dq;
    }
}
