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
    /// <param name="side">A second block input (name and values) beside x, such as an additive attention mask.</param>
    /// <param name="positions">Weights the loss per [N, S] position with random 0/1 values (the output must be [N, S, …]).</param>
    private static void Check(TinyModels m, string output, string[] weights, int seed = 3, (string Name, FloatTensor Values)? side = null, bool positions = false)
    {
        var model = m.Finish(output);
        var graph = new OnnxGraph(model);
        var nodes = graph.TopologicalOrder();
        var block = side is { } s
            ? BlockGradientGraph.Build(model, nodes, ["x", s.Name], output, weights, [m.InputShape, s.Values.Shape], positions)
            : BlockGradientGraph.Build(model, nodes, ["x"], output, weights, [m.InputShape], positions);
        var rng = new Random(seed);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var x = new FloatTensor(Random(m.InputShape.Aggregate(1, (a, b) => a * b)), m.InputShape);
        var target = new FloatTensor(Random(block.OutputShape.Aggregate(1, (a, b) => a * b)), block.OutputShape);
        var weightOf = positions ? new FloatTensor(Enumerable.Range(0, block.OutputShape[0] * block.OutputShape[1]).Select(i => i % 3 == 1 ? 0f : 1f).ToArray(),
            [block.OutputShape[0], block.OutputShape[1], .. Enumerable.Repeat(1, block.OutputShape.Length - 2)]) : null;
        Assert.Equal(positions, block.Positions is not null);
        var w = weights.Select(name => graph.InitializerFloats(name)).ToArray();
        var shapes = weights.Select(name => TensorData.Shape(graph.Initializer(name)!)).ToArray();
        using var session = OrtRunner.FromModel(block.Model);
        Dictionary<string, FloatTensor> Feeds(float[][] values, bool forwardOnly = false)
        {
            var feeds = new Dictionary<string, FloatTensor> { ["x"] = x };
            if (side is { } extra) feeds[extra.Name] = extra.Values;
            if (forwardOnly) return feeds;
            feeds[block.Target] = target;
            if (block.Positions is { } p) feeds[p] = weightOf!;
            for (int i = 0; i < weights.Length; i++) feeds[weights[i]] = new FloatTensor(values[i], shapes[i]);
            return feeds;
        }
        double Loss(float[][] values) => session.Run(Feeds(values), [block.Loss])[block.Loss].Data[0];

        using (var forward = OrtRunner.FromModel(model))
        {
            var y = forward.Run(Feeds(w, forwardOnly: true), [output])[output].Data;
            int perPosition = y.Length / (block.OutputShape[0] * block.OutputShape[1]);
            double expected = y.Select((v, i) => (weightOf is null ? 1 : weightOf.Data[i / perPosition]) * (v - (double)target.Data[i]) * (v - target.Data[i])).Sum();
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

    /// <summary>
    /// A transformer encoder layer as an exporter writes it out: Q/K/V projections, scaled dot-product attention with an
    /// additive mask read as a second block input, the output projection and residual, LayerNorm as ReduceMean/Sub/Pow/
    /// Sqrt/Div/Mul/Add, an FFN with GELU through Erf (and a Tanh branch), the second residual; the loss weighted per
    /// sequence position as padded positions are left out.
    /// </summary>
    [Fact]
    public void Transformer_layer_with_a_mask_input_layernorm_gelu_and_position_weights()
    {
        const int n = 2, s = 5, k = 6;
        var m = new TinyModels([n, s, k], 11);
        var maskValues = new float[n * s];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < s; j++) maskValues[i * s + j] = j < s - 1 - i ? 0 : -6;
        string mask = m.AddInput("mask", [n, 1, s]);
        string wq = m.Weight(k, k), wk = m.Weight(k, k), wv = m.Weight(k, k), wo = m.Weight(k, k), w1 = m.Weight(k, 2 * k), w2 = m.Weight(2 * k, k);
        string q = m.Op("MatMul", ["x", wq]), key = m.Op("MatMul", ["x", wk]), v = m.Op("MatMul", ["x", wv]);
        string scores = m.Op("Add", [m.Op("Div", [m.Op("MatMul", [q, m.Op("Transpose", [key], NodeAttributes.Ints("perm", [0, 2, 1]))]), m.ConstValues([], [(float)Math.Sqrt(k)])]), mask]);
        string context = m.Op("MatMul", [m.Op("Softmax", [scores], NodeAttributes.Int("axis", -1)), v]);
        string attended = m.Op("Add", [m.Op("MatMul", [context, wo]), "x"]);
        string LayerNorm(string t)
        {
            string centred = m.Op("Sub", [t, m.Op("ReduceMean", [t], NodeAttributes.Ints("axes", [-1]))]);
            string variance = m.Op("ReduceMean", [m.Op("Pow", [centred, m.ConstValues([], [2])])], NodeAttributes.Ints("axes", [-1]));
            string normed = m.Op("Div", [centred, m.Op("Sqrt", [m.Op("Add", [variance, m.ConstValues([], [1e-5f])])])]);
            return m.Op("Add", [m.Op("Mul", [normed, m.Weight(k)]), m.Weight(k)]);
        }
        string h = LayerNorm(attended);
        string up = m.Op("MatMul", [h, w1]);
        string gelu = m.Op("Mul", [m.Op("Mul", [up, m.Op("Add", [m.Op("Erf", [m.Op("Div", [up, m.ConstValues([], [(float)Math.Sqrt(2)])])]), m.ConstValues([], [1])])]), m.ConstValues([], [0.5f])]);
        string mixed = m.Op("Add", [gelu, m.Op("Tanh", [up])]);
        string y = LayerNorm(m.Op("Add", [m.Op("MatMul", [mixed, w2]), h]));
        Check(m, y, [wq, wk, wv, wo, w1, w2], side: (mask, new FloatTensor(maskValues, [n, 1, s])), positions: true);
    }
}
