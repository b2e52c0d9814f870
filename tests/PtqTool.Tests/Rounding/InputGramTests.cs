using Microsoft.ML.OnnxRuntime;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rounding;

namespace PtqTool.Tests.Rounding;

/// <summary>The three Gram matrices ONNX Runtime computes for a layer's FP32 and quantized input patches equal a brute-force im2col in C#.</summary>
public class InputGramTests
{
    private static ModelProto ConvModel(int[] inputShape, int[] weightShape, int group, long[] strides, long[] pads, long[] dilations)
    {
        var (model, g) = TestModels.WithFloatInput("conv", inputShape);
        var rng = new Random(1);
        g.AddInitializer(TensorData.FromFloats("w", weightShape, Enumerable.Range(0, weightShape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)rng.NextDouble()).ToArray()));
        g.AddNode(NodeAttributes.Node("Conv", "conv", ["x", "w"], ["y"], NodeAttributes.Int("group", group), NodeAttributes.Ints("strides", strides),
            NodeAttributes.Ints("pads", pads), NodeAttributes.Ints("dilations", dilations)));
        g.AddOutput("y");
        return model;
    }

    [Theory]
    [InlineData(1, 1, 0, 1)]
    [InlineData(2, 2, 1, 1)]
    [InlineData(1, 2, 2, 2)]
    [InlineData(4, 1, 1, 1)]   // depthwise
    public void Conv_patch_grams_match_brute_force_im2col(int group, int stride, int pad, int dilation)
    {
        const int n = 3, c = 4, h = 9, wd = 8, kh = 3, kw = 2, outC = 8;
        int cg = c / group, k = cg * kh * kw;
        int[] weightShape = [outC, cg, kh, kw];
        var model = ConvModel([n, c, h, wd], weightShape, group, [stride, stride], [pad, pad, pad, pad], [dilation, dilation]);
        var rows = WeightRows.Of(model.Graph.Node[0], 1, weightShape)!;
        Assert.Equal((outC, k, group), (rows.Rows, rows.K, rows.Groups));
        var rng = new Random(2);
        // The FP32 input and a perturbed "quantized" one.
        var x = Enumerable.Range(0, n * c * h * wd).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var xq = x.Select(v => v + (float)(rng.NextDouble() * 0.2 - 0.1)).ToArray();
        var grams = InputGram.Collect(InputGram.Build(model.Graph.Node[0], weightShape, rows), [(new FloatTensor(x, [n, c, h, wd]), new FloatTensor(xq, [n, c, h, wd]))], rows,
            new RunnerOptions { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL });

        int oh = (h + 2 * pad - dilation * (kh - 1) - 1) / stride + 1, ow = (wd + 2 * pad - dilation * (kw - 1) - 1) / stride + 1;
        for (int gi = 0; gi < group; gi++)
        {
            var expected = new double[3][];
            for (int e = 0; e < 3; e++) expected[e] = new double[k * k];
            var patch = new double[k];
            var patchQ = new double[k];
            for (int b = 0; b < n; b++)
                for (int y = 0; y < oh; y++)
                    for (int z = 0; z < ow; z++)
                    {
                        for (int ci = 0; ci < cg; ci++)
                            for (int i = 0; i < kh; i++)
                                for (int j = 0; j < kw; j++)
                                {
                                    int row = y * stride - pad + i * dilation, col = z * stride - pad + j * dilation;
                                    bool outside = row < 0 || row >= h || col < 0 || col >= wd;
                                    int at = ((b * c + gi * cg + ci) * h + row) * wd + col;
                                    patch[(ci * kh + i) * kw + j] = outside ? 0 : x[at];
                                    patchQ[(ci * kh + i) * kw + j] = outside ? 0 : xq[at];
                                }
                        for (int p = 0; p < k; p++)
                            for (int q = 0; q < k; q++)
                            {
                                expected[0][p * k + q] += patchQ[p] * patchQ[q];
                                expected[1][p * k + q] += patchQ[p] * patch[q];
                                expected[2][p * k + q] += patch[p] * patch[q];
                            }
                    }
            for (int p = 0; p < k * k; p++)
            {
                Assert.Equal(expected[0][p], grams[gi].Quantized[p], 1e-3);
                Assert.Equal(expected[1][p], grams[gi].Cross[p], 1e-3);
                Assert.Equal(expected[2][p], grams[gi].Reference[p], 1e-3);
            }
        }
    }

    [Fact]
    public void Gemm_input_gram_is_xt_x_and_rows_are_output_features()
    {
        var (model, g) = TestModels.WithFloatInput("gemm", [5, 6]);
        g.AddInitializer(TensorData.FromFloats("w", [3, 6], new float[18]));
        g.AddNode(NodeAttributes.Node("Gemm", "fc", ["x", "w"], ["y"], NodeAttributes.Int("transB", 1)));
        g.AddOutput("y");
        var rows = WeightRows.Of(model.Graph.Node[0], 1, [3, 6])!;
        Assert.Equal((3, 6, 1, true), (rows.Rows, rows.K, rows.Groups, rows.RowMajor));
        var x = Enumerable.Range(0, 30).Select(i => (float)Math.Sin(i)).ToArray();
        var xq = x.Select(v => MathF.Round(v * 4) / 4).ToArray();
        var gram = InputGram.Collect(InputGram.Build(model.Graph.Node[0], [3, 6], rows), [(new FloatTensor(x, [5, 6]), new FloatTensor(xq, [5, 6]))], rows, new RunnerOptions())[0];
        for (int p = 0; p < 6; p++)
            for (int q = 0; q < 6; q++)
            {
                Assert.Equal(Enumerable.Range(0, 5).Sum(m => xq[m * 6 + p] * (double)xq[m * 6 + q]), gram.Quantized[p * 6 + q], 1e-4);
                Assert.Equal(Enumerable.Range(0, 5).Sum(m => xq[m * 6 + p] * (double)x[m * 6 + q]), gram.Cross[p * 6 + q], 1e-4);
                Assert.Equal(Enumerable.Range(0, 5).Sum(m => x[m * 6 + p] * (double)x[m * 6 + q]), gram.Reference[p * 6 + q], 1e-4);
            }
        // A MatMul weight [K, N] has its rows in columns.
        var matmul = WeightRows.Of(NodeAttributes.Node("MatMul", "mm", ["x", "w"], ["y"]), 1, [6, 3])!;
        Assert.Equal((3, 6, false), (matmul.Rows, matmul.K, matmul.RowMajor));
        Assert.Equal(2 * 3 + 1, matmul.Index(1, 2));
    }
}
