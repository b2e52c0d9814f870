using PtqTool.Distill;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Tests.Distill;

public class GradientCheckTests
{
    /// <summary>
    /// Checks dL/dx from the ONNX gradient graph against central finite differences of the same graph's loss along
    /// unit directions v: g·v vs (L(x + hv) − L(x − hv)) / 2h, relative error below 1e-2 (float32). The directions are
    /// the gradient's own and gradient-plus-random mixes: along a random direction g·v is ~‖g‖/√n, too small for a
    /// float32 loss to resolve by differencing, while these keep g·v near ‖g‖ and still probe every component.
    /// </summary>
    private static void Check(ModelProto model, int[] inputShape, int seed = 1)
    {
        var zeroq = GradientGraphBuilder.Build(model, inputShape);
        using var runner = OrtRunner.FromModel(zeroq.Model);
        var rng = new Random(seed);
        int n = inputShape.Aggregate(1, (a, b) => a * b);
        var x = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        double Loss(float[] input) => runner.Run(new FloatTensor(input, inputShape), [zeroq.Loss])[zeroq.Loss].Data[0];
        var g = runner.Run(new FloatTensor(x, inputShape), [zeroq.Gradient])[zeroq.Gradient].Data;
        Assert.Equal(n, g.Length);
        double gNorm = Math.Sqrt(g.Sum(a => (double)a * a));
        Assert.True(gNorm > 0, "zero gradient");
        for (int trial = 0; trial < 3; trial++)
        {
            var r = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            double rNorm = Math.Sqrt(r.Sum(a => (double)a * a));
            var v = g.Select((gi, i) => (float)(gi / gNorm + (trial == 0 ? 0 : r[i] / rNorm))).ToArray();
            double norm = Math.Sqrt(v.Sum(a => (double)a * a));
            for (int i = 0; i < n; i++) v[i] = (float)(v[i] / norm);
            const float h = 1e-2f;
            double analytic = 0;
            for (int i = 0; i < n; i++) analytic += g[i] * (double)v[i];
            var plus = x.Select((a, i) => a + h * v[i]).ToArray();
            var minus = x.Select((a, i) => a - h * v[i]).ToArray();
            double numeric = (Loss(plus) - Loss(minus)) / (2 * h);
            Assert.True(Math.Abs(analytic - numeric) <= 1e-2 * Math.Abs(numeric), $"direction {trial}: gradient·v = {analytic}, finite difference = {numeric}");
        }
    }

    [Fact]
    public void Conv_strided_padded_grouped_dilated()
    {
        var m = new TinyModels([2, 4, 11, 10], 1);
        string y = m.Conv("x", 4, 6, 3, group: 2, strides: [2, 1], pads: [1, 0, 2, 1], dilations: [2, 1]);
        Check(m.Finish(m.BatchNorm(y, 6)), m.InputShape);
    }

    [Fact]
    public void Conv_stride_one_grouped_dilated_asymmetric_pads_uses_the_flipped_kernel()
    {
        var m = new TinyModels([2, 6, 9, 8], 11);
        string y = m.Conv("x", 6, 9, 3, group: 3, pads: [2, 0, 1, 3], dilations: [1, 2]);
        Check(m.Finish(m.BatchNorm(y, 9)), m.InputShape);
    }

    [Fact]
    public void Stacked_conv_batchnorm_relu_blocks_with_a_loss_at_each_batchnorm()
    {
        var m = new TinyModels([3, 2, 8, 8], 2);
        string a = m.Op("Relu", [m.BatchNorm(m.Conv("x", 2, 4, 3, pads: [1, 1, 1, 1]), 4)]);
        string b = m.BatchNorm(m.Conv(a, 4, 4, 3, strides: [2, 2], pads: [1, 1, 1, 1]), 4);
        Check(m.Finish(b), m.InputShape);
    }

    [Fact]
    public void Overlapping_maxpool_accumulates_into_shared_inputs()
    {
        var m = new TinyModels([2, 3, 9, 9], 3);
        string c = m.Conv("x", 3, 4, 3);
        string p = m.Op("MaxPool", [c], NodeAttributes.Ints("kernel_shape", [3, 3]), NodeAttributes.Ints("strides", [1, 1]), NodeAttributes.Ints("pads", [1, 1, 1, 1]));
        Check(m.Finish(m.BatchNorm(m.Conv(p, 4, 4, 1), 4)), m.InputShape);
    }

    [Fact]
    public void Non_overlapping_maxpool_routes_the_gradient_to_each_window_maximum()
    {
        var m = new TinyModels([2, 3, 8, 6], 10);
        string c = m.Conv("x", 3, 4, 3, pads: [1, 1, 1, 1]);
        string p = m.Op("MaxPool", [c], NodeAttributes.Ints("kernel_shape", [2, 3]), NodeAttributes.Ints("strides", [2, 3]));
        Check(m.Finish(m.BatchNorm(m.Conv(p, 4, 4, 1), 4)), m.InputShape);
    }

    [Fact]
    public void Broadcasting_add_sub_mul_reduce_to_each_input_shape()
    {
        var m = new TinyModels([2, 3, 6, 6], 4);
        string c = m.Conv("x", 3, 4, 3, pads: [1, 1, 1, 1]);
        string channelBias = m.Weight(1, 4, 1, 1);
        string rowScale = m.Weight(6, 1);
        string added = m.Op("Add", [c, channelBias]);
        string scaled = m.Op("Mul", [added, rowScale]);
        string skip = m.Conv("x", 3, 4, 1);
        string diff = m.Op("Sub", [scaled, skip]);
        string both = m.Op("Mul", [diff, m.Op("Add", [skip, m.Weight(4, 1, 1)])]);
        Check(m.Finish(m.BatchNorm(both, 4)), m.InputShape);
    }

    [Theory]
    [InlineData("Relu")]
    [InlineData("Clip")]
    [InlineData("Sigmoid")]
    [InlineData("HardSigmoid")]
    [InlineData("HardSwish")]
    [InlineData("Identity")]
    public void Activations(string op)
    {
        var m = new TinyModels([2, 3, 5, 5], 5, opset: 14);
        string c = m.Op("Mul", [m.Conv("x", 3, 4, 3, pads: [1, 1, 1, 1]), m.Const([], () => 4f)]);
        string a = op == "Clip" ? m.Op("Clip", [c, m.Const([], () => -0.5f), m.Const([], () => 0.7f)]) : m.Op(op, [c]);
        Check(m.Finish(m.BatchNorm(m.Conv(a, 4, 4, 1), 4)), m.InputShape);
    }

    [Fact]
    public void Pools_flatten_gemm_and_batchnorm_on_features()
    {
        var m = new TinyModels([4, 3, 8, 8], 6);
        string c = m.Conv("x", 3, 5, 3);
        string avg = m.Op("AveragePool", [c], NodeAttributes.Ints("kernel_shape", [2, 2]), NodeAttributes.Ints("strides", [2, 2]));
        string gap = m.Op("GlobalAveragePool", [avg]);
        string flat = m.Op("Flatten", [gap]);
        string fc = m.Op("Gemm", [flat, m.Weight(6, 5), m.Weight(6)], NodeAttributes.Int("transB", 1));
        string mm = m.Op("MatMul", [fc, m.Weight(6, 6)]);
        Check(m.Finish(m.BatchNorm(mm, 6)), m.InputShape);
    }

    [Fact]
    public void Concat_pad_and_reshape()
    {
        var m = new TinyModels([2, 2, 6, 6], 7);
        string a = m.Conv("x", 2, 3, 3, pads: [1, 1, 1, 1]);
        string b = m.Conv("x", 2, 2, 1);
        string cat = m.Op("Concat", [a, b], NodeAttributes.Int("axis", 1));
        string padsName = "pads_const";
        m.Model.Graph.Initializer.Add(TensorData.FromInt64(padsName, [8], [0, 0, 1, 2, 0, 0, 2, 1]));
        string padded = m.Op("Pad", [cat, padsName]);
        string shapeName = "shape_const";
        m.Model.Graph.Initializer.Add(TensorData.FromInt64(shapeName, [4], [2, 5, 9, 9]));
        string reshaped = m.Op("Reshape", [padded, shapeName]);
        Check(m.Finish(m.BatchNorm(m.Conv(reshaped, 5, 3, 3), 3)), m.InputShape);
    }

    [Fact]
    public void Split_sends_each_part_its_gradient_and_zeros_where_a_part_is_unused()
    {
        var m = new TinyModels([2, 2, 6, 6], 12);
        string c = m.Conv("x", 2, 6, 3, pads: [1, 1, 1, 1]);
        var split = NodeAttributes.Node("Split", "split", [c], ["part0", "part1", "part2"], NodeAttributes.Int("axis", 1));
        m.Model.Graph.Node.Add(split);
        string joined = m.Op("Add", ["part0", "part2"]);   // part1 feeds nothing
        Check(m.Finish(m.BatchNorm(m.Conv(joined, 2, 3, 1), 3)), m.InputShape);
    }

    [Fact]
    public void A_model_without_batchnorm_is_refused_with_advice()
    {
        var m = new TinyModels([1, 1, 4, 4], 8);
        var e = Assert.Throws<PtqException>(() => GradientGraphBuilder.Build(m.Finish(m.Conv("x", 1, 2, 3)), m.InputShape, "tiny.onnx"));
        Assert.Contains("BatchNormalization", e.Message);
        Assert.Contains("--synthetic gaussian", e.Message);
    }

    [Fact]
    public void An_op_without_a_backward_rule_is_named()
    {
        var m = new TinyModels([1, 2, 4, 4], 9);
        string odd = m.Op("Sin", [m.Conv("x", 2, 2, 1)]);
        var e = Assert.Throws<PtqException>(() => GradientGraphBuilder.Build(m.Finish(m.BatchNorm(odd, 2)), m.InputShape));
        Assert.Contains("Sin", e.Message);
    }

    [Fact]
    public void Division_by_a_constant_and_by_an_activation()
    {
        var m = new TinyModels([2, 3, 6, 6], 21);
        string c = m.Conv("x", 3, 4, 3, pads: [1, 1, 1, 1]);
        string byConstant = m.Op("Div", [c, m.ConstValues([], [6])]);
        string positive = m.Op("Add", [m.Op("Mul", [m.Conv("x", 3, 4, 1), m.Conv("x", 3, 4, 1)]), m.ConstValues([], [1])]);
        Check(m.Finish(m.BatchNorm(m.Op("Div", [byConstant, positive]), 4)), m.InputShape);
    }

    [Fact]
    public void Transpose_matmul_of_two_activations_reducemean_and_softmax()
    {
        // An attention-like block: scores = softmax(Q·Kᵀ), out = scores·V, then a mean over the sequence.
        var m = new TinyModels([2, 4, 3, 3], 22, opset: 13);
        string features = m.Op("Reshape", [m.Conv("x", 4, 6, 1), m.ConstLongs([2, 6, 9])]);
        string tokens = m.Op("Transpose", [features], NodeAttributes.Ints("perm", [0, 2, 1]));
        string q = m.Op("MatMul", [tokens, m.Weight(6, 6)]), k = m.Op("MatMul", [tokens, m.Weight(6, 6)]);
        string scores = m.Op("Softmax", [m.Op("MatMul", [q, m.Op("Transpose", [k], NodeAttributes.Ints("perm", [0, 2, 1]))])], NodeAttributes.Int("axis", -1));
        string mixed = m.Op("MatMul", [scores, tokens]);
        string pooled = m.Op("ReduceMean", [mixed], NodeAttributes.Ints("axes", [1]), NodeAttributes.Int("keepdims", 0));
        string back = m.Op("Reshape", [pooled, m.ConstLongs([2, 6, 1, 1])]);
        Check(m.Finish(m.BatchNorm(back, 6)), m.InputShape);
    }

    [Theory]
    [InlineData("asymmetric", "floor")]
    [InlineData("half_pixel", "round_prefer_floor")]
    public void Nearest_resize_by_whole_factors(string transform, string rounding)
    {
        var m = new TinyModels([2, 3, 4, 5], 23, opset: 13);
        string c = m.Conv("x", 3, 4, 3, pads: [1, 1, 1, 1]);
        string up = m.Op("Resize", [c, "", m.ConstValues([4], [1, 1, 2, 3])], NodeAttributes.String("mode", "nearest"),
            NodeAttributes.String("coordinate_transformation_mode", transform), NodeAttributes.String("nearest_mode", rounding));
        Check(m.Finish(m.BatchNorm(m.Conv(up, 4, 4, 3), 4)), m.InputShape);
    }
}
