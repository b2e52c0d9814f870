using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Distill;

/// <summary>The registry of backward rules, one small class per op family.</summary>
public static class BackwardRules
{
    private static readonly Dictionary<string, IBackwardRule> ByOp = Build(
        new ConvBackward(), new BatchNormBackward(), new ActivationBackward(), new ElementwiseBackward(),
        new MaxPoolBackward(), new AveragePoolBackward(), new ShapeBackward(), new ConcatBackward(), new MatrixBackward(),
        new DivBackward(), new TransposeBackward(), new ReduceMeanBackward(), new SoftmaxBackward(), new ResizeBackward(), new SmoothBackward());

    public static IBackwardRule For(NodeProto node) => ByOp.TryGetValue(node.OpType, out var rule)
        ? rule
        : throw new PtqException($"ZeroQ: no backward rule for op {node.OpType} (node '{node.Name}'); supported: {string.Join(", ", ByOp.Keys.Order(StringComparer.Ordinal))}");

    public static IEnumerable<string> Supported => ByOp.Keys.Order(StringComparer.Ordinal);

    private static Dictionary<string, IBackwardRule> Build(params IBackwardRule[] rules)
    {
        var d = new Dictionary<string, IBackwardRule>(StringComparer.Ordinal);
        foreach (var r in rules) foreach (var op in r.OpTypes) d.Add(op, r);
        return d;
    }
}

/// <summary>
/// Conv: dW from the input's patches (see WeightGradient); dX = ConvTranspose(dY, W) with the same strides, pads, dilations and groups; output_padding restores X's size.
/// A stride-1 Conv with constant weights uses the equivalent Conv instead (ONNX Runtime's Conv is much faster than its
/// ConvTranspose): the kernel rotated by 180° with input and output channels swapped within each group, and pads
/// d·(k−1) − p.
/// </summary>
public sealed class ConvBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["Conv"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        var result = new Dictionary<int, string>();
        if (needs(0)) result[0] = InputGradient(node, dY, c);
        if (needs(1)) result[1] = WeightGradient(node, dY, c);
        return result;
    }

    /// <summary>
    /// dW[m, ·] = Σ over samples and output positions of dY[m] times the input patch there. The patches are gathered by
    /// memory moves only: the input padded once, then one strided Slice per kernel offset, stacked to [N, C, k, L] (a
    /// pointwise, unstrided Conv's patches are its input). Then per group one MatMul of dY [N, g, M/g, L] with the
    /// patches transposed (ONNX Runtime fuses the transpose into the GEMM) and a sum over the samples: the same
    /// multiply-adds as the forward Conv. (A one-hot Conv for the patches costs K times the forward pass, and a Conv
    /// with dY as a dilated kernel runs at a tenth of ONNX Runtime's usual Conv speed.)
    /// </summary>
    private static string WeightGradient(NodeProto node, string dY, GradientContext c)
    {
        int[] x = c.Shape(node.Input[0]), w = c.Shape(node.Input[1]), y = c.Shape(node.Output[0]);
        int spatial = x.Length - 2, groups = (int)NodeAttributes.GetInt(node, "group", 1);
        if (NodeAttributes.GetString(node, "auto_pad", "NOTSET") is not ("NOTSET" or "VALID"))
            throw new PtqException($"Conv '{node.Name}' uses auto_pad SAME_*; export it with explicit pads");
        long[] strides = NodeAttributes.GetInts(node, "strides", Enumerable.Repeat(1L, spatial).ToArray());
        long[] dilations = NodeAttributes.GetInts(node, "dilations", Enumerable.Repeat(1L, spatial).ToArray());
        long[] pads = NodeAttributes.GetInts(node, "pads", new long[2 * spatial]);
        int[] kernel = w[2..];
        int window = kernel.Aggregate(1, (a, b) => a * b), k = w[1] * window, n = x[0], m = w[0], positions = y[2..].Aggregate(1, (a, b) => a * b);
        string patches;
        if (window == 1 && strides.All(v => v == 1) && pads.All(v => v == 0)) patches = node.Input[0];
        else
        {
            string padded = node.Input[0];
            if (pads.Any(v => v != 0))
                padded = c.Op("Pad", [padded, c.Longs([0, 0, .. pads[..spatial], 0, 0, .. pads[spatial..]])]);
            long[] axes = Enumerable.Range(2, spatial).Select(i => (long)i).ToArray();
            var slices = new List<string>();
            for (int offset = 0; offset < window; offset++)
            {
                var starts = new long[spatial];
                int rest = offset;
                for (int i = spatial - 1; i >= 0; i--) { starts[i] = rest % kernel[i] * dilations[i]; rest /= kernel[i]; }
                var ends = starts.Select((v, i) => v + (y[2 + i] - 1) * strides[i] + 1).ToArray();
                string slice = c.Op("Slice", [padded, c.Longs(starts), c.Longs(ends), c.Longs(axes), c.Longs(strides)]);
                slices.Add(c.Op("Unsqueeze", [slice, c.Longs([2])]));
            }
            patches = slices.Count == 1 ? slices[0] : c.Op("Concat", slices, NodeAttributes.Int("axis", 2));   // [N, C, window, spatial…]
        }
        string p = c.Op("Transpose", [c.Op("Reshape", [patches, c.Longs([n, groups, k, positions])])], NodeAttributes.Ints("perm", [0, 1, 3, 2]));
        string d = c.Op("Reshape", [dY, c.Longs([n, groups, m / groups, positions])]);
        string perSample = c.Op("MatMul", [d, p]);   // [N, g, M/g, K]
        string summed = c.Op("ReduceSum", [perSample, c.Longs([0])], NodeAttributes.Int("keepdims", 0));
        return c.Op("Reshape", [summed, c.Longs(w.Select(v => (long)v).ToArray())]);
    }

    private static string InputGradient(NodeProto node, string dY, GradientContext c)
    {
        if (NodeAttributes.GetString(node, "auto_pad", "NOTSET") is not ("NOTSET" or "VALID"))
            throw new PtqException($"ZeroQ: Conv '{node.Name}' uses auto_pad SAME_*; export it with explicit pads");
        int[] x = c.Shape(node.Input[0]), y = c.Shape(node.Output[0]), w = c.Shape(node.Input[1]);
        int spatial = x.Length - 2;
        long[] strides = NodeAttributes.GetInts(node, "strides", Enumerable.Repeat(1L, spatial).ToArray());
        long[] dilations = NodeAttributes.GetInts(node, "dilations", Enumerable.Repeat(1L, spatial).ToArray());
        long[] pads = NodeAttributes.GetInts(node, "pads", new long[2 * spatial]);
        long group = NodeAttributes.GetInt(node, "group", 1);
        var flippedPads = new long[2 * spatial];
        for (int i = 0; i < spatial; i++)
        {
            flippedPads[i] = dilations[i] * (w[2 + i] - 1) - pads[i];
            flippedPads[i + spatial] = dilations[i] * (w[2 + i] - 1) - pads[i + spatial];
        }
        if (strides.All(s => s == 1) && flippedPads.All(p => p >= 0) && c.Graph.ConstantValue(node.Input[1]) is { } weight)
        {
            string flipped = c.Floats(Flip(TensorData.ToFloats(weight), w, (int)group), [w[1] * (int)group, w[0] / (int)group, .. w[2..]]);
            return c.Op("Conv", [dY, flipped], NodeAttributes.Ints("dilations", dilations), NodeAttributes.Ints("pads", flippedPads), NodeAttributes.Int("group", group));
        }
        if (strides.All(s => s == 1) && flippedPads.All(p => p >= 0))
        {
            // The same Conv with the kernel flipped in the graph: rotate the spatial axes (Slice with step −1) and swap
            // input and output channels within each group.
            int g = (int)group;
            string rotated = c.Op("Slice", [node.Input[1], c.Longs(Enumerable.Repeat(-1L, spatial).ToArray()), c.Longs(Enumerable.Repeat(long.MinValue, spatial).ToArray()),
                c.Longs(Enumerable.Range(2, spatial).Select(i => (long)i).ToArray()), c.Longs(Enumerable.Repeat(-1L, spatial).ToArray())]);
            string split = c.Op("Reshape", [rotated, c.Longs([g, w[0] / g, w[1], .. w[2..].Select(d => (long)d)])]);
            string swapped = c.Op("Transpose", [split], NodeAttributes.Ints("perm", [0, 2, 1, .. Enumerable.Range(3, spatial).Select(i => (long)i)]));
            string flippedKernel = c.Op("Reshape", [swapped, c.Longs([w[1] * g, w[0] / g, .. w[2..].Select(d => (long)d)])]);
            return c.Op("Conv", [dY, flippedKernel], NodeAttributes.Ints("dilations", dilations), NodeAttributes.Ints("pads", flippedPads), NodeAttributes.Int("group", group));
        }
        var outputPadding = new long[spatial];
        for (int i = 0; i < spatial; i++)
        {
            long produced = (y[2 + i] - 1) * strides[i] - pads[i] - pads[i + spatial] + dilations[i] * (w[2 + i] - 1) + 1;
            outputPadding[i] = x[2 + i] - produced;
        }
        return c.Op("ConvTranspose", [dY, node.Input[1]],
            NodeAttributes.Ints("strides", strides), NodeAttributes.Ints("dilations", dilations), NodeAttributes.Ints("pads", pads),
            NodeAttributes.Ints("output_padding", outputPadding), NodeAttributes.Int("group", group));
    }

    /// <summary>W [M, C/g, k...] → W' [C, M/g, k...] with W'[j·C/g + c, m, a] = W[j·M/g + m, c, k−1−a] (spatial indices reversed).</summary>
    private static float[] Flip(float[] w, int[] shape, int groups)
    {
        int outC = shape[0], inPerGroup = shape[1], kernel = w.Length / (outC * inPerGroup), outPerGroup = outC / groups;
        var result = new float[w.Length];
        for (int j = 0; j < groups; j++)
            for (int m = 0; m < outPerGroup; m++)
                for (int ci = 0; ci < inPerGroup; ci++)
                    for (int k = 0; k < kernel; k++)
                    {
                        int source = ((j * outPerGroup + m) * inPerGroup + ci) * kernel + k;
                        int target = ((j * inPerGroup + ci) * outPerGroup + m) * kernel + (kernel - 1 - k);
                        result[target] = w[source];
                    }
        return result;
    }
}

/// <summary>BatchNormalization in inference mode is a per-channel affine map: dX = dY·γ/√(σ²+ε).</summary>
public sealed class BatchNormBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["BatchNormalization"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        if (!needs(0)) return new Dictionary<int, string>();
        var g = c.Graph;
        float[] gamma = TensorData.ToFloats(g.ConstantValue(node.Input[1])!), variance = TensorData.ToFloats(g.ConstantValue(node.Input[4])!);
        double eps = NodeAttributes.GetFloat(node, "epsilon", 1e-5f);
        int rank = c.Shape(node.Input[0]).Length;
        var k = gamma.Select((v, i) => (float)(v / Math.Sqrt(variance[i] + eps))).ToArray();
        int[] shape = [1, k.Length, .. Enumerable.Repeat(1, rank - 2)];
        return new Dictionary<int, string> { [0] = c.Op("Mul", [dY, c.Floats(k, shape)]) };
    }
}

/// <summary>Relu, Clip, Sigmoid, HardSigmoid, HardSwish, Identity, Dropout (inference).</summary>
public sealed class ActivationBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Identity", "Dropout"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        if (!needs(0)) return new Dictionary<int, string>();
        string x = node.Input[0], y = node.Output[0];
        string dX;
        switch (node.OpType)
        {
            case "Identity" or "Dropout":
                dX = dY;
                break;
            case "Relu":
                dX = c.Op("Where", [c.Op("Greater", [x, c.Scalar(0)]), dY, c.Scalar(0)]);
                break;
            case "Clip":
            {
                // Values strictly inside [min, max] pass the gradient; min/max may be absent (±∞).
                string inside = c.Op("Cast", [c.Op("Greater", [x, node.Input.Count > 1 && node.Input[1].Length > 0 ? node.Input[1] : c.Scalar(float.NegativeInfinity)])], NodeAttributes.Int("to", ElementType.Float));
                string below = c.Op("Cast", [c.Op("Less", [x, node.Input.Count > 2 && node.Input[2].Length > 0 ? node.Input[2] : c.Scalar(float.PositiveInfinity)])], NodeAttributes.Int("to", ElementType.Float));
                dX = c.Op("Mul", [dY, c.Op("Mul", [inside, below])]);
                break;
            }
            case "Sigmoid":
                dX = c.Op("Mul", [dY, c.Op("Mul", [y, c.Op("Sub", [c.Scalar(1), y])])]);
                break;
            case "HardSigmoid":
            {
                float alpha = NodeAttributes.GetFloat(node, "alpha", 0.2f), beta = NodeAttributes.GetFloat(node, "beta", 0.5f);
                string linear = c.Op("Add", [c.Op("Mul", [x, c.Scalar(alpha)]), c.Scalar(beta)]);
                dX = c.Op("Mul", [dY, c.Op("Mul", [c.Scalar(alpha), Between(c, linear, 0, 1)])]);
                break;
            }
            default: // HardSwish: y = x·hs(x), hs = clip(x/6 + 1/2, 0, 1); dy/dx = hs + x/6 inside (−3, 3)
            {
                string linear = c.Op("Add", [c.Op("Mul", [x, c.Scalar(1f / 6)]), c.Scalar(0.5f)]);
                string hs = c.Op("Clip", [linear, c.Scalar(0), c.Scalar(1)]);
                string slope = c.Op("Add", [hs, c.Op("Mul", [c.Op("Mul", [x, c.Scalar(1f / 6)]), Between(c, linear, 0, 1)])]);
                dX = c.Op("Mul", [dY, slope]);
                break;
            }
        }
        return new Dictionary<int, string> { [0] = dX };
    }

    private static string Between(GradientContext c, string v, float lo, float hi) =>
        c.Op("Mul", [c.Op("Cast", [c.Op("Greater", [v, c.Scalar(lo)])], NodeAttributes.Int("to", ElementType.Float)),
                     c.Op("Cast", [c.Op("Less", [v, c.Scalar(hi)])], NodeAttributes.Int("to", ElementType.Float))]);
}

/// <summary>Add, Sub, Mul with numpy broadcasting: each input's gradient is reduced back to its own shape.</summary>
public sealed class ElementwiseBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["Add", "Sub", "Mul"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        var result = new Dictionary<int, string>();
        int[] y = c.Shape(node.Output[0]);
        for (int i = 0; i < 2; i++)
        {
            if (!needs(i)) continue;
            string g = node.OpType switch
            {
                "Add" => dY,
                "Sub" => i == 0 ? dY : c.Op("Neg", [dY]),
                _ => c.Op("Mul", [dY, node.Input[1 - i]]),
            };
            result[i] = c.Unbroadcast(g, y, c.Shape(node.Input[i]));
        }
        return result;
    }
}

/// <summary>
/// MaxPool: the gradient goes to the position each maximum came from. Non-overlapping windows (kernel = stride, no
/// padding or dilation, sizes divisible) use a mask: dY and Y are expanded back to the input's size and
/// dX = Where(X = Y↑, dY↑, 0), which keeps ONNX Runtime's fast MaxPool kernel (a tie inside a window passes the
/// gradient to every tied position; after a Relu the tied zeros get none anyway). Otherwise the forward MaxPool gets
/// its Indices output (flat positions over N·C·H·W) and ScatterElements with reduction "add" sums where windows overlap.
/// </summary>
public sealed class MaxPoolBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["MaxPool"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        if (!needs(0)) return new Dictionary<int, string>();
        if (NodeAttributes.GetInt(node, "storage_order", 0) != 0) throw new PtqException($"ZeroQ: MaxPool '{node.Name}' with storage_order=1 is not supported");
        if (NonOverlapping(node, c.Shape(node.Input[0])) is long[] kernel)
        {
            string up = Upsample(c, node.Output[0], c.Shape(node.Output[0]), kernel);
            string upGradient = Upsample(c, dY, c.Shape(node.Output[0]), kernel);
            return new Dictionary<int, string> { [0] = c.Op("Where", [c.Op("Equal", [node.Input[0], up]), upGradient, c.Scalar(0)]) };
        }
        string indices;
        if (node.Output.Count > 1 && node.Output[1].Length > 0) indices = node.Output[1];
        else
        {
            indices = c.Name("maxpool_indices");
            if (node.Output.Count > 1) node.Output[1] = indices; else node.Output.Add(indices);
        }
        int[] x = c.Shape(node.Input[0]);
        long count = x.Aggregate(1L, (a, b) => a * b);
        string flatIndices = c.Op("Reshape", [indices, c.Longs([1, -1])]);
        string flatGradient = c.Op("Reshape", [dY, c.Longs([1, -1])]);
        string zeros = c.Floats(new float[count], [1, (int)count]);
        string scattered = c.Op("ScatterElements", [zeros, flatIndices, flatGradient], NodeAttributes.Int("axis", 1), NodeAttributes.String("reduction", "add"));
        return new Dictionary<int, string> { [0] = c.Op("Reshape", [scattered, c.Longs(x.Select(d => (long)d).ToArray())]) };
    }

    /// <summary>The kernel when windows tile the input exactly (2-D, kernel = stride, no pads or dilation); else null.</summary>
    private static long[]? NonOverlapping(NodeProto node, int[] x)
    {
        long[] kernel = NodeAttributes.GetInts(node, "kernel_shape", []);
        if (kernel.Length != 2 || x.Length != 4) return null;
        long[] strides = NodeAttributes.GetInts(node, "strides", [1, 1]);
        bool plain = NodeAttributes.GetInts(node, "pads", [0, 0, 0, 0]).All(p => p == 0)
                     && NodeAttributes.GetInts(node, "dilations", [1, 1]).All(d => d == 1)
                     && NodeAttributes.GetString(node, "auto_pad", "NOTSET") is "NOTSET" or "VALID";
        return plain && strides.SequenceEqual(kernel) && x[2] % kernel[0] == 0 && x[3] % kernel[1] == 0 ? kernel : null;
    }

    /// <summary>
    /// [N, C, H, W] → [N, C, H·kh, W·kw] repeating each value over its window: Resize, nearest, with asymmetric
    /// coordinates and floor rounding at integer scales is an exact repeat (and far faster in ONNX Runtime than a 6-D Expand).
    /// </summary>
    private static string Upsample(GradientContext c, string t, int[] shape, long[] k) =>
        c.Op("Resize", [t, "", c.Floats([1, 1, k[0], k[1]], [4])],
            NodeAttributes.String("mode", "nearest"), NodeAttributes.String("coordinate_transformation_mode", "asymmetric"),
            NodeAttributes.String("nearest_mode", "floor"));
}

/// <summary>
/// GlobalAveragePool: dX = dY/(H·W) expanded. AveragePool: ConvTranspose of dY with a depthwise kernel of 1/(kh·kw),
/// exact when no padding is counted out (pads = 0 or count_include_pad = 1).
/// </summary>
public sealed class AveragePoolBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["GlobalAveragePool", "AveragePool"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        if (!needs(0)) return new Dictionary<int, string>();
        int[] x = c.Shape(node.Input[0]);
        if (node.OpType == "GlobalAveragePool")
        {
            int area = x.Skip(2).Aggregate(1, (a, b) => a * b);
            string scaled = c.Op("Mul", [dY, c.Scalar(1f / area)]);
            return new Dictionary<int, string> { [0] = c.Op("Expand", [scaled, c.Longs(x.Select(d => (long)d).ToArray())]) };
        }
        long[] kernel = NodeAttributes.GetInts(node, "kernel_shape", []);
        int spatial = kernel.Length;
        long[] strides = NodeAttributes.GetInts(node, "strides", Enumerable.Repeat(1L, spatial).ToArray());
        long[] pads = NodeAttributes.GetInts(node, "pads", new long[2 * spatial]);
        if (pads.Any(p => p != 0) && NodeAttributes.GetInt(node, "count_include_pad", 0) == 0)
            throw new PtqException($"ZeroQ: AveragePool '{node.Name}' divides border windows by fewer elements (count_include_pad=0 with pads); not supported");
        int channels = x[1];
        long area2 = kernel.Aggregate(1L, (a, b) => a * b);
        var weights = Enumerable.Repeat(1f / area2, (int)(channels * area2)).ToArray();
        string w = c.Floats(weights, [channels, 1, .. kernel.Select(k => (int)k)]);
        int[] y = c.Shape(node.Output[0]);
        var outputPadding = new long[spatial];
        for (int i = 0; i < spatial; i++)
            outputPadding[i] = x[2 + i] - ((y[2 + i] - 1) * strides[i] - pads[i] - pads[i + spatial] + kernel[i]);
        string dX = c.Op("ConvTranspose", [dY, w], NodeAttributes.Ints("strides", strides), NodeAttributes.Ints("pads", pads),
            NodeAttributes.Ints("output_padding", outputPadding), NodeAttributes.Int("group", channels));
        return new Dictionary<int, string> { [0] = dX };
    }
}

/// <summary>Flatten, Reshape, Squeeze, Unsqueeze, Pad (constant): shape moves; the gradient is reshaped (or sliced) back.</summary>
public sealed class ShapeBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["Flatten", "Reshape", "Squeeze", "Unsqueeze", "Pad"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        if (!needs(0)) return new Dictionary<int, string>();
        int[] x = c.Shape(node.Input[0]);
        if (node.OpType == "Pad")
        {
            if (NodeAttributes.GetString(node, "mode", "constant") != "constant") throw new PtqException($"ZeroQ: Pad '{node.Name}' mode must be constant");
            var pads = TensorData.ToInt64s(c.Graph.ConstantValue(node.Input[1]) ?? throw new PtqException($"ZeroQ: Pad '{node.Name}' needs constant pads"));
            int rank = x.Length;
            var starts = pads.Take(rank).ToArray();
            var ends = starts.Select((s, i) => s + x[i]).ToArray();
            return new Dictionary<int, string> { [0] = c.Op("Slice", [dY, c.Longs(starts), c.Longs(ends)]) };
        }
        return new Dictionary<int, string> { [0] = c.Op("Reshape", [dY, c.Longs(x.Select(d => (long)d).ToArray())]) };
    }
}

/// <summary>Concat: each input gets its slice of the gradient along the axis.</summary>
public sealed class ConcatBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["Concat"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        int[] y = c.Shape(node.Output[0]);
        long axis = NodeAttributes.GetInt(node, "axis", 0);
        if (axis < 0) axis += y.Length;
        var result = new Dictionary<int, string>();
        long offset = 0;
        for (int i = 0; i < node.Input.Count; i++)
        {
            long size = c.Shape(node.Input[i])[axis];
            if (needs(i)) result[i] = c.Op("Slice", [dY, c.Longs([offset]), c.Longs([offset + size]), c.Longs([axis])]);
            offset += size;
        }
        return result;
    }
}

/// <summary>Gemm (Y = α·A'·B' + β·C) and MatMul: the gradients of A and of B (the weight).</summary>
public sealed class MatrixBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["Gemm", "MatMul"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        var result = new Dictionary<int, string>();
        if (!needs(0) && !needs(1)) return result;
        if (node.OpType == "MatMul")
        {
            // Y = A·B over the last two axes (leading axes batch): dA = dY·Bᵀ, dB = Aᵀ·dY, each summed back over broadcast batch axes.
            int[] a = c.Shape(node.Input[0]), b = c.Shape(node.Input[1]), y = c.Shape(node.Output[0]);
            if (a.Length < 2 || b.Length < 2) throw new PtqException($"ZeroQ: MatMul '{node.Name}' needs operands of rank 2 or more");
            string T(string t, int rank) => c.Op("Transpose", [t], NodeAttributes.Ints("perm", [.. Enumerable.Range(0, rank - 2).Select(i => (long)i), rank - 1, rank - 2]));
            if (needs(0)) result[0] = c.Unbroadcast(c.Op("MatMul", [dY, T(node.Input[1], b.Length)]), [.. y[..^2], a[^2], a[^1]], a);
            if (needs(1)) result[1] = c.Unbroadcast(c.Op("MatMul", [T(node.Input[0], a.Length), dY]), [.. y[..^2], b[^2], b[^1]], b);
            return result;
        }
        bool transA = NodeAttributes.GetInt(node, "transA", 0) == 1, transB = NodeAttributes.GetInt(node, "transB", 0) == 1;
        float alpha = NodeAttributes.GetFloat(node, "alpha", 1);
        // dA' = α·dY·B'ᵀ; with transA the gradient of A is its transpose.
        if (needs(0))
        {
            string g = c.Op("Gemm", [dY, node.Input[1]], NodeAttributes.Float("alpha", alpha), NodeAttributes.Int("transB", transB ? 0 : 1));
            result[0] = transA ? c.Op("Transpose", [g]) : g;
        }
        if (needs(1))
        {
            // dB' = α·A'ᵀ·dY: B [N, K] with transB is dYᵀ·A', else A'ᵀ·dY.
            if (transA) throw new PtqException($"Gemm '{node.Name}' with transA: no weight gradient rule");
            result[1] = transB
                ? c.Op("Gemm", [dY, node.Input[0]], NodeAttributes.Float("alpha", alpha), NodeAttributes.Int("transA", 1))
                : c.Op("Gemm", [node.Input[0], dY], NodeAttributes.Float("alpha", alpha), NodeAttributes.Int("transA", 1));
        }
        return result;
    }
}

/// <summary>Div, y = a / b with broadcasting: da = dY / b, db = −dY·y / b (a division by a constant needs only the first).</summary>
public sealed class DivBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["Div"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        var result = new Dictionary<int, string>();
        int[] y = c.Shape(node.Output[0]);
        if (needs(0)) result[0] = c.Unbroadcast(c.Op("Div", [dY, node.Input[1]]), y, c.Shape(node.Input[0]));
        if (needs(1))
            result[1] = c.Unbroadcast(c.Op("Neg", [c.Op("Div", [c.Op("Mul", [dY, node.Output[0]]), node.Input[1]])]), y, c.Shape(node.Input[1]));
        return result;
    }
}

/// <summary>Transpose: the gradient goes back through the inverse permutation.</summary>
public sealed class TransposeBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["Transpose"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        if (!needs(0)) return new Dictionary<int, string>();
        int rank = c.Shape(node.Input[0]).Length;
        var perm = NodeAttributes.GetInts(node, "perm", Enumerable.Range(0, rank).Reverse().Select(i => (long)i).ToArray());
        var inverse = new long[rank];
        for (int i = 0; i < rank; i++) inverse[perm[i]] = i;
        return new Dictionary<int, string> { [0] = c.Op("Transpose", [dY], NodeAttributes.Ints("perm", inverse)) };
    }
}

/// <summary>ReduceMean: each input element gets dY of its group divided by the group's size (keepdims either way).</summary>
public sealed class ReduceMeanBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["ReduceMean"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        if (!needs(0)) return new Dictionary<int, string>();
        int[] x = c.Shape(node.Input[0]);
        var axes = (NodeAttributes.Find(node, "axes")?.Ints.ToArray()
                    ?? (node.Input.Count > 1 && node.Input[1].Length > 0 && c.Graph.ConstantValue(node.Input[1]) is { } t ? TensorData.ToInt64s(t) : null)
                    ?? Enumerable.Range(0, x.Length).Select(i => (long)i).ToArray())
            .Select(a => (int)(a < 0 ? a + x.Length : a)).ToHashSet();
        var kept = x.Select((d, i) => axes.Contains(i) ? 1L : d).ToArray();
        long count = axes.Aggregate(1L, (n, a) => n * x[a]);
        string reshaped = c.Op("Reshape", [dY, c.Longs(kept)]);
        string spread = c.Op("Expand", [reshaped, c.Longs(x.Select(d => (long)d).ToArray())]);
        return new Dictionary<int, string> { [0] = c.Op("Mul", [spread, c.Scalar(1f / count)]) };
    }
}

/// <summary>Softmax over one axis (opset 13): dX = Y·(dY − Σ_axis dY·Y).</summary>
public sealed class SoftmaxBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["Softmax"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        if (!needs(0)) return new Dictionary<int, string>();
        string y = node.Output[0];
        long axis = NodeAttributes.GetInt(node, "axis", -1);
        string dot = c.Op("ReduceSum", [c.Op("Mul", [dY, y]), c.Longs([axis])], NodeAttributes.Int("keepdims", 1));
        return new Dictionary<int, string> { [0] = c.Op("Mul", [y, c.Op("Sub", [dY, dot])]) };
    }
}

/// <summary>
/// Resize by whole factors in nearest mode where each input pixel becomes a k×k block (asymmetric coordinates rounded
/// down, or half-pixel rounded with ties down: what exporters write for 2× upsampling): the gradient of a pixel is the
/// sum over its block, an average pool times the block size. Other modes are refused with a message.
/// </summary>
public sealed class ResizeBackward : IBackwardRule
{
    public IReadOnlyCollection<string> OpTypes => ["Resize"];

    public IReadOnlyDictionary<int, string> Backward(NodeProto node, string dY, GradientContext c, Func<int, bool> needs)
    {
        if (!needs(0)) return new Dictionary<int, string>();
        int[] x = c.Shape(node.Input[0]), y = c.Shape(node.Output[0]);
        string mode = NodeAttributes.GetString(node, "mode", "nearest");
        string transform = NodeAttributes.GetString(node, "coordinate_transformation_mode", "half_pixel");
        string rounding = NodeAttributes.GetString(node, "nearest_mode", "round_prefer_floor");
        bool whole = x.Length == 4 && x[0] == y[0] && x[1] == y[1] && y[2] % x[2] == 0 && y[3] % x[3] == 0;
        // Both of these map output pixel o to input ⌊o / k⌋ for a whole factor k: asymmetric o/k rounded down, and
        // half-pixel (o + ½)/k − ½ rounded with ties down.
        bool blocks = (transform == "asymmetric" && rounding == "floor") || (transform is "half_pixel" or "pytorch_half_pixel" && rounding == "round_prefer_floor");
        if (mode != "nearest" || !whole || !blocks)
            throw new PtqException($"ZeroQ: Resize '{node.Name}' ({mode}, {transform}, {rounding}, {string.Join('x', x[2..])} → {string.Join('x', y[2..])}): only whole-factor nearest upsampling has a backward rule");
        long kh = y[2] / x[2], kw = y[3] / x[3];
        string pooled = c.Op("AveragePool", [dY], NodeAttributes.Ints("kernel_shape", [kh, kw]), NodeAttributes.Ints("strides", [kh, kw]));
        return new Dictionary<int, string> { [0] = c.Op("Mul", [pooled, c.Scalar(kh * kw)]) };
    }
}
