using PtqTool.Distill;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Tests.Distill;

public class BlockGradientTests
{
    /// <summary>
    /// The block graph's weight gradients against central finite differences of its own loss: for directions v over all
    /// learned weights together (the gradient's own, then gradient-plus-random mixes), g·v vs (L(W + hv) − L(W − hv))/2h
    /// within 1 % (float32). The loss is also checked against ‖f(x) − y‖² computed from the float model run by ONNX
    /// Runtime directly, so forward and backward are both tied to ONNX Runtime's own ops.
    /// </summary>
    private static void Check(TinyModels m, string output, string[] weights, int seed = 3)
    {
        var model = m.Finish(output);
        var graph = new OnnxGraph(model);
        var nodes = graph.TopologicalOrder();
        var block = BlockGradientGraph.Build(model, nodes, "x", output, weights, m.InputShape);
        var rng = new Random(seed);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var x = new FloatTensor(Random(m.InputShape.Aggregate(1, (a, b) => a * b)), m.InputShape);
        var target = new FloatTensor(Random(block.OutputShape.Aggregate(1, (a, b) => a * b)), block.OutputShape);
        var w = weights.Select(name => graph.InitializerFloats(name)).ToArray();
        var shapes = weights.Select(name => TensorData.Shape(graph.Initializer(name)!)).ToArray();
        using var session = OrtRunner.FromModel(block.Model);
        Dictionary<string, FloatTensor> Feeds(float[][] values)
        {
            var feeds = new Dictionary<string, FloatTensor> { [block.Input] = x, [block.Target] = target };
            for (int i = 0; i < weights.Length; i++) feeds[weights[i]] = new FloatTensor(values[i], shapes[i]);
            return feeds;
        }
        double Loss(float[][] values) => session.Run(Feeds(values), [block.Loss])[block.Loss].Data[0];

        using (var forward = OrtRunner.FromModel(model))
        {
            var y = forward.Run(x, [output])[output].Data;
            double expected = y.Select((v, i) => (v - (double)target.Data[i]) * (v - target.Data[i])).Sum();
            Assert.Equal(expected, Loss(w), expected * 1e-5);
        }
        var result = session.Run(Feeds(w), block.WeightGradients);
        var g = block.WeightGradients.Select(name => result[name].Data).ToArray();
        for (int i = 0; i < weights.Length; i++) Assert.Equal(w[i].Length, g[i].Length);
        double gNorm = Math.Sqrt(g.Sum(a => a.Sum(v => (double)v * v)));
        Assert.True(gNorm > 0, "zero gradient");
        foreach (var (layer, gradient) in weights.Zip(g)) Assert.True(gradient.Any(v => v != 0), $"no gradient reaches {layer}");
        for (int trial = 0; trial < 3; trial++)
        {
            var r = g.Select(a => Random(a.Length)).ToArray();
            double rNorm = Math.Sqrt(r.Sum(a => a.Sum(v => (double)v * v)));
            var v = g.Select((a, l) => a.Select((gi, i) => gi / gNorm + (trial == 0 ? 0 : r[l][i] / rNorm)).ToArray()).ToArray();
            double norm = Math.Sqrt(v.Sum(a => a.Sum(e => e * e)));
            const double h = 1e-3;
            double analytic = 0;
            for (int l = 0; l < g.Length; l++)
                for (int i = 0; i < g[l].Length; i++) analytic += g[l][i] * v[l][i] / norm;
            var plus = w.Select((a, l) => a.Select((e, i) => (float)(e + h * v[l][i] / norm)).ToArray()).ToArray();
            var minus = w.Select((a, l) => a.Select((e, i) => (float)(e - h * v[l][i] / norm)).ToArray()).ToArray();
            double numeric = (Loss(plus) - Loss(minus)) / (2 * h);
            Assert.True(Math.Abs(analytic - numeric) <= 1e-2 * Math.Abs(numeric), $"direction {trial}: gradient·v = {analytic}, finite difference = {numeric}");
        }
    }

    private static (string Output, string Weight) Conv(TinyModels m, string x, int inC, int outC, int k, int group = 1, long[]? strides = null, long[]? pads = null, long[]? dilations = null)
    {
        var attrs = new List<AttributeProto> { NodeAttributes.Int("group", group) };
        if (strides is not null) attrs.Add(NodeAttributes.Ints("strides", strides));
        if (pads is not null) attrs.Add(NodeAttributes.Ints("pads", pads));
        if (dilations is not null) attrs.Add(NodeAttributes.Ints("dilations", dilations));
        string w = m.Weight(outC, inC / group, k, k);
        return (m.Op("Conv", [x, w, m.Weight(outC)], [.. attrs]), w);
    }

    [Fact]
    public void Residual_block_with_every_conv_form_and_a_gemm()
    {
        // Conv 3×3 (stride 1: flipped kernel for dX, the swapped Conv for dW) → Relu → depthwise 3×3 (one-hot patches)
        // → Add of the skip path → grouped, strided, dilated Conv with asymmetric pads (ConvTranspose for dX) →
        // pointwise Conv → Flatten → Gemm (transB = 0).
        var m = new TinyModels([2, 4, 9, 9], 5);
        var (a, w1) = Conv(m, "x", 4, 4, 3, pads: [1, 1, 1, 1]);
        var (b, w2) = Conv(m, m.Op("Relu", [a]), 4, 4, 3, group: 4, pads: [1, 1, 1, 1]);
        string s = m.Op("Relu", [m.Op("Add", [b, "x"])]);
        var (c, w3) = Conv(m, s, 4, 6, 3, group: 2, strides: [2, 2], pads: [2, 1, 1, 2], dilations: [2, 2]);
        var (d, w4) = Conv(m, c, 6, 5, 1);
        string f = m.Op("Flatten", [d]);
        string w5 = m.Weight(80, 7);
        string y = m.Op("Gemm", [f, w5, m.Weight(7)]);
        Check(m, y, [w1, w2, w3, w4, w5]);
    }

    [Fact]
    public void Ungrouped_strided_dilated_conv_and_gemm_with_transposed_weight()
    {
        var m = new TinyModels([3, 3, 11, 10], 7);
        var (a, w1) = Conv(m, "x", 3, 5, 3, strides: [2, 3], pads: [0, 2, 1, 1], dilations: [1, 2]);
        string f = m.Op("Flatten", [m.Op("Relu", [a])]);
        string w2 = m.Weight(4, 5 * 5 * 3);
        string y = m.Op("Gemm", [f, w2], NodeAttributes.Int("transB", 1), NodeAttributes.Float("alpha", 0.5f));
        Check(m, y, [w1, w2]);
    }

    [Fact]
    public void Matmul_weight_and_a_weight_that_is_not_learned()
    {
        var m = new TinyModels([4, 6], 9);
        string fixedWeight = m.Weight(6, 5);
        string w = m.Weight(5, 3);
        string y = m.Op("MatMul", [m.Op("Relu", [m.Op("MatMul", ["x", fixedWeight])]), w]);
        Check(m, y, [w]);
    }
}
