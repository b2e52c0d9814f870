using PtqTool.Kernels;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Tests.Kernels;

/// <summary>
/// One weighted op in QDQ form that ONNX Runtime fuses into an integer kernel: X (codes as floats, scale 1, zero point 0)
/// → Q u8 → DQ → op(DQ(int8 W, scale 1)) → Q u8 (scale <see cref="OutputScale"/>, zero point 128) → DQ. Its output,
/// divided by the scale, plus 128, is the kernel's requantized accumulator, which a reference can predict exactly.
/// </summary>
public sealed class SingleLayerQdq
{
    public const float OutputScale = 512;
    public const int OutputZero = 128;

    public required ModelProto Model { get; init; }
    public required int[] InputShape { get; init; }
    public required sbyte[] Weights { get; init; }
    public required int[] WeightShape { get; init; }
    public required string Op { get; init; }
    public int Group { get; init; } = 1;

    public ReductionLayout Layout => Op switch
    {
        "Conv" => ReductionLayout.Conv(WeightShape, Group),
        "Gemm" => ReductionLayout.NByK(WeightShape[0], WeightShape[1]),
        _ => ReductionLayout.KByN(WeightShape[0], WeightShape[1]),
    };

    public static SingleLayerQdq Conv(int batch, int channels, int outChannels, int size, int group, sbyte[] weights) =>
        Build("Conv", [batch, channels, size, size], [outChannels, channels / group, 3, 3], weights, group,
            NodeAttributes.Int("group", group), NodeAttributes.Ints("pads", [1, 1, 1, 1]));

    public static SingleLayerQdq Gemm(int batch, int k, int n, sbyte[] weights) =>
        Build("Gemm", [batch, k], [n, k], weights, 1, NodeAttributes.Int("transB", 1));

    public static SingleLayerQdq MatMul(int batch, int k, int n, sbyte[] weights) => Build("MatMul", [batch, k], [k, n], weights, 1);

    private static SingleLayerQdq Build(string op, int[] inputShape, int[] weightShape, sbyte[] weights, int group, params AttributeProto[] attributes)
    {
        var (model, g) = TestModels.WithFloatInput("layer", inputShape);
        g.AddInitializer(TensorData.Scalar("one", 1f));
        g.AddInitializer(TensorData.FromUInt8("zero_u8", [], [0]));
        g.AddInitializer(TensorData.FromInt8("zero_s8", [], [0]));
        g.AddInitializer(TensorData.Scalar("y_scale", OutputScale));
        g.AddInitializer(TensorData.FromUInt8("y_zero", [], [(byte)OutputZero]));
        g.AddInitializer(TensorData.FromInt8("w_q", weightShape, weights));
        g.AddNode(NodeAttributes.Node("QuantizeLinear", "qx", ["x", "one", "zero_u8"], ["xq"]));
        g.AddNode(NodeAttributes.Node("DequantizeLinear", "dqx", ["xq", "one", "zero_u8"], ["xd"]));
        g.AddNode(NodeAttributes.Node("DequantizeLinear", "dqw", ["w_q", "one", "zero_s8"], ["wd"]));
        g.AddNode(NodeAttributes.Node(op, "layer", ["xd", "wd"], ["y"], attributes));
        g.AddNode(NodeAttributes.Node("QuantizeLinear", "qy", ["y", "y_scale", "y_zero"], ["yq"]));
        g.AddNode(NodeAttributes.Node("DequantizeLinear", "dqy", ["yq", "y_scale", "y_zero"], ["out"]));
        g.AddOutput("out");
        return new SingleLayerQdq { Model = model, InputShape = inputShape, Weights = weights, WeightShape = weightShape, Op = op, Group = group };
    }

    /// <summary>The output codes a kernel with this accumulation computes for input codes <paramref name="codes"/>.</summary>
    public int[] Reference(int[] codes, AccumulationModel model)
    {
        var layout = Layout;
        var rows = Rows(codes);
        var result = new int[rows.Count * layout.Channels];
        var a = new int[layout.Length];
        var w = new sbyte[layout.Length];
        for (int p = 0; p < rows.Count; p++)
            for (int c = 0; c < layout.Channels; c++)
            {
                var order = layout.Channel(c);
                for (int r = 0; r < order.Length; r++)
                {
                    a[r] = rows[p].Codes(c, r);
                    w[r] = Weights[order[r]];
                }
                var accumulation = layout.AccumulatesExactlyOnX86 && model == AccumulationModel.X86PairSaturating16 ? AccumulationModel.Int32 : model;
                int acc = IntegerDotProduct.Compute(accumulation, a, false, w);
                result[rows[p].OutputIndex(c)] = Math.Clamp((int)MathF.Round(acc / OutputScale, MidpointRounding.ToEven) + OutputZero, 0, 255);
            }
        return result;
    }

    private sealed record Row(Func<int, int, int> Codes, Func<int, int> OutputIndex);

    /// <summary>One row per output position: the activation codes of each channel's reduction, in the kernel's order.</summary>
    private List<Row> Rows(int[] x)
    {
        var rows = new List<Row>();
        if (Op != "Conv")
        {
            int batch = InputShape[0], k = InputShape[1], n = Layout.Channels;
            for (int b = 0; b < batch; b++)
            {
                int bb = b;
                rows.Add(new Row((c, r) => x[bb * k + r], c => bb * n + c));
            }
            return rows;
        }
        int channels = InputShape[1], size = InputShape[2], m = WeightShape[0], cg = WeightShape[1];
        int perGroup = m / Group;
        for (int bi = 0; bi < InputShape[0]; bi++)
            for (int h = 0; h < size; h++)
                for (int wi = 0; wi < size; wi++)
                {
                    int b = bi, y = h, xw = wi;
                    rows.Add(new Row((c, r) =>
                    {
                        int ki = r / cg, ic = r % cg + (c / perGroup) * cg;
                        int yy = y + ki / 3 - 1, xx = xw + ki % 3 - 1;
                        return yy < 0 || yy >= size || xx < 0 || xx >= size ? 0 : x[((b * channels + ic) * size + yy) * size + xx];
                    }, c => ((b * m + c) * size + y) * size + xw));
                }
        return rows;
    }

    /// <summary>Runs the model in ONNX Runtime on these codes; returns its output codes.</summary>
    public int[] Run(int[] codes, bool optimized)
    {
        using var runner = OrtRunner.FromModel(Model, new RunnerOptions { Threads = 1, Optimization = optimized
            ? Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_ALL : Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_DISABLE_ALL });
        var output = runner.Run(new FloatTensor(codes.Select(c => (float)c).ToArray(), InputShape))["out"];
        return output.Data.Select(v => (int)MathF.Round(v / OutputScale) + OutputZero).ToArray();
    }

    /// <summary>
    /// Weights built to tell pairings apart: in every reduction of length L, channel c of kind c % 3 gets two weights of
    /// 120 (or −120) at adjacent positions (2j, 2j+1) (kinds 0 and 1: a saturating pair if pairs are (2j, 2j+1)) or
    /// straddling two pairs (2j+1, 2j+2) (kind 2: harmless under that pairing, saturating under any other); the rest are
    /// small random values.
    /// </summary>
    public static sbyte[] PairingProbeWeights(ReductionLayout layout, int flatLength, int seed)
    {
        var rng = new Random(seed);
        var w = new sbyte[flatLength];
        for (int i = 0; i < w.Length; i++) w[i] = (sbyte)rng.Next(-4, 5);
        for (int c = 0; c < layout.Channels; c++)
        {
            var order = layout.Channel(c);
            int pairs = order.Length / 2;
            if (pairs < 2) continue;
            int j = rng.Next(pairs - 1);
            switch (c % 3)
            {
                case 0: w[order[2 * j]] = 120; w[order[2 * j + 1]] = 120; break;
                case 1: w[order[2 * j]] = -120; w[order[2 * j + 1]] = -120; break;
                default: w[order[2 * j + 1]] = 120; w[order[2 * j + 2]] = 120; break;
            }
        }
        return w;
    }
}
