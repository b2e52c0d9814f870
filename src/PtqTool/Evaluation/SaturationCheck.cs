using PtqTool.Kernels;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Evaluation;

/// <summary>One integer kernel of the model and whether the target's accumulation can overflow on it.</summary>
/// <param name="Node">The node of the QDQ model the kernel was fused from (its weighted op).</param>
/// <param name="Kernel">The op ONNX Runtime runs (QLinearConv, QGemm, …).</param>
/// <param name="ActivationCodes">The stored activation codes the check assumed, from the quantizer's type and any Clip/Relu in front of it.</param>
public sealed record KernelSaturation(string Node, string Kernel, string WeightType, string ActivationType, (int Lo, int Hi) ActivationCodes, LayerSaturation Verdict);

/// <summary>The per-layer verdict of <see cref="SaturationCheck"/> for one target.</summary>
public sealed record SaturationReport(KernelTarget Target, IReadOnlyList<KernelSaturation> Layers)
{
    public bool CanSaturate => Layers.Any(l => l.Verdict.CanSaturate);
    public int SaturatingLayers => Layers.Count(l => l.Verdict.CanSaturate);
    public int SaturatingChannels => Layers.Sum(l => l.Verdict.OverflowingChannels);

    public string Method => KernelTargets.Accumulation(Target) == AccumulationModel.Int32
        ? "products accumulate in int32: nothing can saturate"
        : KernelTargets.KnowsPairing(Target)
            ? "exact: pairs (2j, 2j+1) of ONNX Runtime 1.32 MLAS's reduction order, worst case over the calibrated activation codes"
            : "conservative: any two weights of a channel may pair, worst case over the calibrated activation codes";

    public string Summary => CanSaturate
        ? $"{KernelTargets.Name(Target)}: {SaturatingChannels} output channel(s) in {SaturatingLayers} of {Layers.Count} integer layer(s) can saturate a 16-bit pair (worst by {Layers.Max(l => l.Verdict.WorstExcess)})"
        : $"{KernelTargets.Name(Target)}: no integer layer can saturate ({Layers.Count} checked)";
}

/// <summary>
/// Finds the integer kernels ONNX Runtime builds from a QDQ model (its own optimized graph) and runs the target's
/// reference accumulation on their actual integer weights over the activation codes they were calibrated for
/// (<see cref="SaturationAnalysis"/>). Works on any QDQ model, whoever made it.
/// </summary>
public static class SaturationCheck
{
    public static SaturationReport Run(ModelProto qdq, ModelProto optimized, KernelTarget target)
    {
        var original = new OnnxGraph(qdq);
        var graph = new OnnxGraph(optimized);
        var layers = new List<KernelSaturation>();
        foreach (var node in graph.Graph.Node)
        {
            if (Operands(node) is not var (x, xZero, w, wZero)) continue;
            var weight = graph.Initializer(w);
            if (weight is null || weight.DataType is not (ElementType.Int8 or ElementType.UInt8)) continue;
            var shape = TensorData.Shape(weight);
            var layout = Layout(node, shape);
            if (layout is null) continue;
            var zero = xZero.Length > 0 ? graph.Initializer(xZero) ?? original.Initializer(xZero) : null;
            bool signedActivations = zero?.DataType == ElementType.Int8;
            var codes = ActivationCodes(original, x, signedActivations);
            string weightType = weight.DataType == ElementType.Int8 ? "int8" : "uint8";
            string actType = signedActivations ? "int8" : "uint8";
            string name = SourceNode(original, w) ?? node.Name;
            if (weight.DataType == ElementType.UInt8)
            {
                // u8 weights: x86 runs u8×u8 through 16-bit multiply-adds (exact); ARM shifts both to s8, a pair of
                // (−128)·(−128) products can wrap there only when the weight 0 (−128 shifted) meets activation code 0.
                var verdict = KernelTargets.Accumulation(target) == AccumulationModel.ArmPairSigned16 || target == KernelTarget.Portable
                    ? AnalyzeShiftedU8(weight, layout, target, codes)
                    : new LayerSaturation(layout.Channels, 0, 0, 0, KernelTargets.KnowsPairing(target), false);
                layers.Add(new KernelSaturation(name, node.OpType, weightType, actType, codes, verdict));
                continue;
            }
            var values = TensorData.ToFloats(weight).Select(v => (sbyte)v).ToArray();
            layers.Add(new KernelSaturation(name, node.OpType, weightType, actType, codes, Analyze(values, layout, target, signedActivations, codes)));
        }
        return new SaturationReport(target, layers);
    }

    /// <summary>The verdict under the target's model; portable is checked under every kernel family it must run on.</summary>
    public static LayerSaturation Analyze(sbyte[] weights, ReductionLayout layout, KernelTarget target, bool signedActivations, (int Lo, int Hi) codes)
    {
        if (target != KernelTarget.Portable) return AnalyzeOne(weights, layout, KernelTargets.Accumulation(target), KernelTargets.KnowsPairing(target), signedActivations, codes);
        var x86 = AnalyzeOne(weights, layout, AccumulationModel.X86PairSaturating16, false, signedActivations, codes);
        var arm = AnalyzeOne(weights, layout, AccumulationModel.ArmPairSigned16, false, signedActivations, codes);
        return x86.WorstExcess >= arm.WorstExcess && x86.OverflowingChannels >= arm.OverflowingChannels ? x86 : arm;
    }

    private static LayerSaturation AnalyzeOne(sbyte[] weights, ReductionLayout layout, AccumulationModel model, bool exact, bool signedActivations, (int Lo, int Hi) codes)
    {
        var (lo, hi) = IntegerDotProduct.KernelDomain(model, signedActivations, codes.Lo, codes.Hi);
        return SaturationAnalysis.Analyze(weights, layout, model, exact, lo, hi);
    }

    private static LayerSaturation AnalyzeShiftedU8(TensorProto weight, ReductionLayout layout, KernelTarget target, (int Lo, int Hi) codes)
    {
        var shifted = TensorData.ToFloats(weight).Select(v => (sbyte)(v - 128)).ToArray();
        return AnalyzeOne(shifted, layout, AccumulationModel.ArmPairSigned16, false, false, codes);
    }

    /// <summary>(activation input, its zero point, weight input, its zero point) of an integer kernel; null for other ops.</summary>
    private static (string X, string XZero, string W, string WZero)? Operands(NodeProto n)
    {
        string At(int i) => i < n.Input.Count ? n.Input[i] : "";
        return n.OpType switch
        {
            "QLinearConv" or "QLinearMatMul" or "QGemm" => (At(0), At(2), At(3), At(5)),
            "MatMulIntegerToFloat" => (At(0), At(4), At(1), At(5)),
            "MatMulInteger" or "ConvInteger" => (At(0), At(2), At(1), At(3)),
            _ => null,
        };
    }

    private static ReductionLayout? Layout(NodeProto node, int[] shape) => node.OpType switch
    {
        "QLinearConv" or "ConvInteger" when shape.Length >= 3 => ReductionLayout.Conv(shape, (int)NodeAttributes.GetInt(node, "group", 1)),
        "QGemm" when shape.Length == 2 => NodeAttributes.GetInt(node, "transB", 0) == 1
            ? ReductionLayout.NByK(shape[0], shape[1])
            : ReductionLayout.KByN(shape[0], shape[1]),
        "QLinearMatMul" or "MatMulIntegerToFloat" or "MatMulInteger" when shape.Length >= 2 =>
            ReductionLayout.KByN(shape[..^1].Aggregate(1, (a, b) => a * b), shape[^1]),
        _ => null,
    };

    /// <summary>
    /// The stored codes the activation can take: the quantizer's type range, narrowed by a Clip (constant bounds) or Relu
    /// right in front of its QuantizeLinear (how ptq and other tools express fewer than 8 bits, or a folded activation).
    /// </summary>
    public static (int Lo, int Hi) ActivationCodes(OnnxGraph original, string tensor, bool signedActivations)
    {
        var (lo, hi) = signedActivations ? (-128, 127) : (0, 255);
        if (original.Producer(tensor) is not { OpType: "QuantizeLinear" } q || q.Input.Count < 2) return (lo, hi);
        var scale = original.ConstantValue(q.Input[1]);
        var zeroTensor = q.Input.Count > 2 && q.Input[2].Length > 0 ? original.ConstantValue(q.Input[2]) : null;
        if (scale is null || TensorData.ElementCount(scale) != 1) return (lo, hi);
        float s = TensorData.ToFloats(scale)[0];
        int z = zeroTensor is null ? 0 : (int)TensorData.ToFloats(zeroTensor)[0];
        int Code(float v) => (int)Math.Clamp(Math.Round(v / s, MidpointRounding.ToEven) + z, lo, hi);
        var producer = original.Producer(q.Input[0]);
        if (producer is { OpType: "Relu" }) return (Math.Max(lo, z), hi);
        if (producer is { OpType: "Clip" })
        {
            float? Bound(int i) => producer.Input.Count > i && producer.Input[i].Length > 0 && original.ConstantValue(producer.Input[i]) is { } t
                ? TensorData.ToFloats(t)[0] : null;
            float min = Bound(1) ?? NodeAttributes.GetFloat(producer, "min", float.NegativeInfinity);
            float max = Bound(2) ?? NodeAttributes.GetFloat(producer, "max", float.PositiveInfinity);
            return (float.IsFinite(min) ? Code(min) : lo, float.IsFinite(max) ? Code(max) : hi);
        }
        return (lo, hi);
    }

    /// <summary>The weighted node of the QDQ model whose weight (through its DequantizeLinear) is <paramref name="weight"/>.</summary>
    private static string? SourceNode(OnnxGraph original, string weight)
    {
        foreach (var dq in original.Consumers(weight))
            if (dq.OpType == "DequantizeLinear")
                foreach (var c in original.Consumers(dq.Output[0]))
                    return c.Name.Length > 0 ? c.Name : $"{c.OpType} ({dq.Output[0]})";
        return null;
    }
}
