using Microsoft.ML.OnnxRuntime;
using PtqTool.Multipoint;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;
using PtqTool.Rounding;
using PtqTool.Scales;
using PtqTool.Scales.Losses;

namespace PtqTool.Tests.Multipoint;

/// <summary>
/// The integer ONNX form of a second weight term, run by ONNX Runtime (exact QDQ semantics and fused kernels), against
/// the float simulation computed here: the layer with weight s₁q₁ + s₂q₂ on the chosen channels, on the same quantized
/// input, through the same output quantization. They may differ only by the activation roundings the form adds.
/// </summary>
public class SecondTermBranchTests
{
    private const float InputScale = 0.02f;
    private const int InputZero = 128;

    private sealed record Layer(ModelProto Model, NodeProto Node, float[] Input, int[] InputShape, float[] Weights, int[] WeightShape, float[] Bias, QuantizedWeight First, float OutputScale, int OutputZero, bool QuantizedOutput);

    private static Layer Build(string op, bool quantizedOutput, bool reluFolded, int group = 1)
    {
        var rng = new Random(op.Length * 7 + group);
        float Laplace(double b) => (float)(-Math.Log(1 - rng.NextDouble()) * (rng.Next(2) * 2 - 1) * b);
        int[] inputShape = op == "Conv" ? [2, 4, 6, 6] : [5, 24];
        int[] weightShape = op == "Conv" ? [8, 4 / group, 3, 3] : [10, 24];
        var x = Enumerable.Range(0, inputShape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var w = Enumerable.Range(0, weightShape.Aggregate(1, (a, b) => a * b)).Select(_ => Laplace(0.05)).ToArray();
        var bias = Enumerable.Range(0, weightShape[0]).Select(_ => Laplace(0.1)).ToArray();
        var first = WeightQuantizer.Quantize(w, weightShape, 0, new MsqeLoss(), QuantizationOptions.SymmetricWeights(4), bias, InputScale);

        var (model, g) = TestModels.WithFloatInput("layer", inputShape);
        g.AddInitializer(TensorData.Scalar("x_scale", InputScale));
        g.AddInitializer(TensorData.FromUInt8("x_zero", [], [InputZero]));
        g.AddInitializer(TensorData.FromInt8("w_q", weightShape, first.Values.Select(v => (sbyte)v).ToArray()));
        g.AddInitializer(TensorData.FromFloats("w_scale", [first.Scales.Length], first.Scales));
        g.AddInitializer(TensorData.FromInt8("w_zero", [first.Scales.Length], new sbyte[first.Scales.Length]));
        var (biasCodes, biasScales) = WeightQuantizer.QuantizeBias(bias, InputScale, first.Scales);
        g.AddInitializer(TensorData.FromInt32("b_q", [bias.Length], biasCodes));
        g.AddInitializer(TensorData.FromFloats("b_scale", [bias.Length], biasScales));
        g.AddInitializer(TensorData.FromInt32("b_zero", [bias.Length], new int[bias.Length]));
        g.AddNode(NodeAttributes.Node("QuantizeLinear", "qx", ["x", "x_scale", "x_zero"], ["xq"]));
        g.AddNode(NodeAttributes.Node("DequantizeLinear", "dqx", ["xq", "x_scale", "x_zero"], ["xd"]));
        g.AddNode(NodeAttributes.Node("DequantizeLinear", "dqw", ["w_q", "w_scale", "w_zero"], ["wd"], NodeAttributes.Int("axis", 0)));
        g.AddNode(NodeAttributes.Node("DequantizeLinear", "dqb", ["b_q", "b_scale", "b_zero"], ["bd"], NodeAttributes.Int("axis", 0)));
        var attributes = op == "Conv"
            ? new[] { NodeAttributes.Ints("pads", [1, 1, 1, 1]), NodeAttributes.Int("group", group) }
            : new[] { NodeAttributes.Int("transB", 1) };
        var node = NodeAttributes.Node(op, "layer", ["xd", "wd", "bd"], ["y"], attributes);
        g.AddNode(node);
        float outputScale = 0;
        int outputZero = 0;
        if (quantizedOutput)
        {
            // The output range of the float layer on these inputs; a folded Relu pins the zero point at 0.
            var y = Reference(op, group, Dequantized(x), inputShape, w, weightShape, bias);
            float lo = reluFolded ? 0 : y.Min(), hi = y.Max();
            outputScale = (hi - lo) / 255;
            outputZero = (int)Math.Round(-lo / outputScale);
            g.AddInitializer(TensorData.Scalar("y_scale", outputScale));
            g.AddInitializer(TensorData.FromUInt8("y_zero", [], [(byte)outputZero]));
            g.AddNode(NodeAttributes.Node("QuantizeLinear", "qy", ["y", "y_scale", "y_zero"], ["yq"]));
            g.AddNode(NodeAttributes.Node("DequantizeLinear", "dqy", ["yq", "y_scale", "y_zero"], ["out"]));
            g.AddOutput("out");
        }
        else g.AddOutput("y");
        return new Layer(model, node, x, inputShape, w, weightShape, bias, first, outputScale, outputZero, quantizedOutput);
    }

    private static float[] Dequantized(float[] x) =>
        x.Select(v => InputScale * (Math.Clamp((int)MathF.Round(v / InputScale, MidpointRounding.ToEven) + InputZero, 0, 255) - InputZero)).ToArray();

    /// <summary>Conv (3×3, pads 1) or Gemm (transB) in double.</summary>
    private static float[] Reference(string op, int group, float[] x, int[] xs, float[] w, int[] ws, float[] bias)
    {
        if (op == "Gemm")
        {
            int batch = xs[0], k = xs[1], n = ws[0];
            var y = new float[batch * n];
            for (int b = 0; b < batch; b++)
                for (int o = 0; o < n; o++)
                {
                    double acc = bias[o];
                    for (int i = 0; i < k; i++) acc += x[b * k + i] * (double)w[o * k + i];
                    y[b * n + o] = (float)acc;
                }
            return y;
        }
        int bn = xs[0], c = xs[1], size = xs[2], m = ws[0], cg = ws[1], perGroup = m / group;
        var result = new float[bn * m * size * size];
        for (int b = 0; b < bn; b++)
            for (int o = 0; o < m; o++)
                for (int yy = 0; yy < size; yy++)
                    for (int xx = 0; xx < size; xx++)
                    {
                        double acc = bias[o];
                        for (int ic = 0; ic < cg; ic++)
                            for (int ky = 0; ky < 3; ky++)
                                for (int kx = 0; kx < 3; kx++)
                                {
                                    int iy = yy + ky - 1, ix = xx + kx - 1;
                                    if (iy < 0 || iy >= size || ix < 0 || ix >= size) continue;
                                    int channel = (o / perGroup) * cg + ic;
                                    acc += x[((b * c + channel) * size + iy) * size + ix] * (double)w[((o * cg + ic) * 3 + ky) * 3 + kx];
                                }
                        result[((b * m + o) * size + yy) * size + xx] = (float)acc;
                    }
        return result;
    }

    private static float[] Run(ModelProto model, float[] x, int[] shape, bool fused)
    {
        using var runner = OrtRunner.FromModel(model, new RunnerOptions { Threads = 1, Optimization = fused ? GraphOptimizationLevel.ORT_ENABLE_ALL : GraphOptimizationLevel.ORT_DISABLE_ALL });
        return runner.Run(new FloatTensor(x, shape))[runner.OutputNames[0]].Data;
    }

    [Theory]
    [InlineData("Conv", BranchForm.Scatter, true, false, 1)]
    [InlineData("Conv", BranchForm.Scatter, true, true, 1)]
    [InlineData("Conv", BranchForm.Padded, true, true, 1)]
    [InlineData("Conv", BranchForm.Padded, true, false, 2)]
    [InlineData("Gemm", BranchForm.Scatter, true, false, 1)]
    [InlineData("Gemm", BranchForm.Padded, true, false, 1)]
    [InlineData("Gemm", BranchForm.Scatter, false, false, 1)]
    [InlineData("Conv", BranchForm.Scatter, false, false, 1)]
    public void The_integer_form_computes_the_two_term_layer_within_its_roundings(string op, BranchForm form, bool quantizedOutput, bool reluFolded, int group)
    {
        var layer = Build(op, quantizedOutput, reluFolded, group);
        var oneTerm = Run(layer.Model, layer.Input, layer.InputShape, fused: false);
        var spec = QuantizationOptions.SymmetricWeights(4);
        var second = ResidualTerm.Second(layer.Weights, layer.WeightShape, layer.First, new MsqeLoss(), spec);
        var rows = WeightRows.Of(layer.Node, 1, layer.WeightShape)!;
        int[] chosen = form == BranchForm.Padded && group > 1 ? [0, 1, 2, 3, 4, 5, 6, 7] : op == "Conv" ? [1, 4, 5] : [0, 3, 7, 8];

        // The float simulation: s₁q₁ (+ s₂q₂ on the chosen rows) on the quantized input, the int32 bias, the output's quantization.
        var effective = new float[layer.Weights.Length];
        var term2 = new float[layer.Weights.Length];
        for (int r = 0; r < rows.Rows; r++)
            for (int k = 0; k < rows.K; k++)
            {
                int i = rows.Index(r, k);
                term2[i] = chosen.Contains(r) ? second.Scales[r] * second.Values[i] : 0;
                effective[i] = layer.First.Scales[r] * layer.First.Values[i] + term2[i];
            }
        var biasCodes = WeightQuantizer.QuantizeBias(layer.Bias, InputScale, layer.First.Scales);
        var bias = biasCodes.Values.Select((v, c) => v * biasCodes.Scales[c]).ToArray();
        var xd = Dequantized(layer.Input);
        var simulated = Reference(op, group, xd, layer.InputShape, effective, layer.WeightShape, bias);
        var secondOnly = Reference(op, group, xd, layer.InputShape, term2, layer.WeightShape, new float[bias.Length]);
        float secondScale = secondOnly.Max(Math.Abs) * 1.25f / 127;

        var graph = new OnnxGraph(layer.Model);
        SecondTermBranch.Add(graph, layer.Node, 1, layer.WeightShape, rows, second, chosen, form, secondScale, 128, IntegerRange.UInt8, 0);
        graph.SortNodes();

        float sy = layer.OutputScale;
        float Output(float v) => !layer.QuantizedOutput ? v : sy * (Math.Clamp((int)MathF.Round(v / sy, MidpointRounding.ToEven) + layer.OutputZero, 0, 255) - layer.OutputZero);
        var expected = simulated.Select(Output).ToArray();
        // Term 1 on a step a little wider than the output's, term 2 on its own, then the output's rounding once more.
        double tolerance = layer.QuantizedOutput ? 1.6 * sy + 0.5 * secondScale + 1e-5 : 1e-4;
        foreach (bool fused in new[] { false, true })
        {
            var actual = Run(layer.Model, layer.Input, layer.InputShape, fused);
            Assert.Equal(expected.Length, actual.Length);
            double worst = expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second));
            Assert.True(worst <= tolerance + (fused ? sy : 0), $"{(fused ? "fused" : "exact QDQ")}: worst difference {worst} > {tolerance}");
        }
        // And the second term matters: one term's output is much further from the two-term layer on the chosen channels.
        var exact = Run(layer.Model, layer.Input, layer.InputShape, fused: false);
        int channels = rows.Rows, inner = expected.Length / (layer.InputShape[0] * channels);
        double With(float[] y) => Enumerable.Range(0, y.Length).Where(i => chosen.Contains(i / inner % channels)).Average(i => Math.Abs(y[i] - expected[i]));
        Assert.True(With(exact) < 0.5 * With(oneTerm), $"two terms {With(exact)} vs one {With(oneTerm)}");
        // Channels without a term are exactly the one-term model's where the output is quantized on the same grid.
        if (form == BranchForm.Scatter && !layer.QuantizedOutput)
            Assert.All(Enumerable.Range(0, exact.Length).Where(i => !chosen.Contains(i / inner % channels)), i => Assert.Equal(oneTerm[i], exact[i], 1e-4));
    }
}
