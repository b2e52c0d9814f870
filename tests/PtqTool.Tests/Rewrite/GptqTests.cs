using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;
using PtqTool.Rounding;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Robustness;

namespace PtqTool.Tests.Rewrite;

public class GptqTests
{
    private static float[] Uniform(int n, Random r) => Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();

    /// <summary>Rows x = z·A with A mixing neighbouring features: strongly correlated inputs, as hidden states are.</summary>
    private static float[] Correlated(int rows, int k, Random r)
    {
        var z = Uniform(rows * k, r);
        var x = new float[rows * k];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < k; j++)
                for (int d = 0; d < 4; d++) x[i * k + j] += z[i * k + (j + d) % k] * (d == 0 ? 1f : 0.8f) * (1 + j % 3);
        return x;
    }

    private static double[] Gram(float[] x, int rows, int k)
    {
        var h = new double[k * k];
        for (int i = 0; i < rows; i++)
            for (int a = 0; a < k; a++)
                for (int b = 0; b < k; b++) h[a * k + b] += (double)x[i * k + a] * x[i * k + b];
        return h;
    }

    /// <summary>Σ‖x(W − Ŵ)‖² over the rows, by direct products.</summary>
    private static double Error(float[] x, int rows, float[] w, float[] approx, int k, int n)
    {
        double total = 0;
        for (int i = 0; i < rows; i++)
            for (int c = 0; c < n; c++)
            {
                double e = 0;
                for (int j = 0; j < k; j++) e += x[i * k + j] * ((double)w[j * n + c] - approx[j * n + c]);
                total += e * e;
            }
        return total;
    }

    [Fact]
    public void Upper_cholesky_of_the_inverse_times_the_matrix_is_the_identity()
    {
        const int k = 37;
        var r = new Random(1);
        var h = Gram(Correlated(200, k, r), 200, k);
        for (int i = 0; i < k; i++) h[i * k + i] += 0.1;
        var u = Gptq.UpperCholeskyOfInverse((double[])h.Clone(), k);
        for (int i = 0; i < k; i++)
            for (int j = 0; j < i; j++) Assert.Equal(0, u[i * k + j]);
        // (UᵀU)·H = I
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++)
            {
                double v = 0;
                for (int c = 0; c < k; c++)
                {
                    double inv = 0;
                    for (int p = 0; p < k; p++) inv += u[p * k + a] * u[p * k + c];
                    v += inv * h[c * k + b];
                }
                Assert.True(Math.Abs(v - (a == b ? 1 : 0)) < 1e-8, $"({a}, {b}): {v}");
            }
    }

    [Fact]
    public void With_uncorrelated_unit_inputs_no_error_moves_and_it_is_nearest_rounding()
    {
        const int k = 80, n = 5;
        var w = Uniform(k * n, new Random(2));
        var identity = new double[k * k];
        for (int i = 0; i < k; i++) identity[i * k + i] = 3;
        var gptq = Gptq.Pack(w, k, n, identity);
        var nearest = MatMulNBits.Pack(w, k, n);
        Assert.Equal(nearest.Packed, gptq.Packed);
        Assert.Equal(nearest.Scales, gptq.Scales);
    }

    [Fact]
    public void On_correlated_inputs_the_output_error_is_below_nearest_rounding()
    {
        const int rows = 400, k = 96, n = 12;
        var r = new Random(3);
        var x = Correlated(rows, k, r);
        var w = Uniform(k * n, r);
        var h = Gram(x, rows, k);
        var nearest = MatMulNBits.Dequantize(MatMulNBits.Pack(w, k, n));
        var solved = MatMulNBits.Dequantize(Gptq.Pack(w, k, n, h));
        double before = Error(x, rows, w, nearest, k, n), after = Error(x, rows, w, solved, k, n);
        // The closed form agrees with the direct products.
        Assert.Equal(before, Gptq.OutputError(w, nearest, k, n, h), before * 1e-9);
        Assert.True(after < 0.8 * before, $"GPTQ {after:G4} vs nearest {before:G4}");
    }

    [Fact]
    public void Quantize_solves_matmulnbits_weights_on_the_calibration_inputs_by_default()
    {
        const int k = 64, n = 6;
        string dir = Repo.TempDir(), path = Path.Combine(dir, "m.onnx"), calib = Path.Combine(dir, "calib");
        var (model, g) = TestModels.WithFloatInput("gptq_matmul", [4, 3, k]);
        g.Graph.Input[0].Type.TensorType.Shape.Dim[0] = new TensorShapeProto.Types.Dimension { DimParam = "batch" };
        var r = new Random(4);
        var w = Uniform(k * n, r);
        g.AddInitializer(TensorData.FromFloats("W", [k, n], w));
        g.AddNode(NodeAttributes.Node("MatMul", "dense", ["x", "W"], ["y"]));
        g.AddOutput("y");
        OnnxModelFile.Save(model, path);
        Directory.CreateDirectory(calib);
        var x = Correlated(16 * 3, k, r);
        File.WriteAllBytes(Path.Combine(calib, "x.npy"), NpyReader.Write(x, [16, 3, k]));

        PackedWeight Packed(ModelProto m)
        {
            var graph = new OnnxGraph(m);
            var node = Assert.Single(m.Graph.Node, nd => nd.OpType == "MatMulNBits");
            var b = graph.Initializer(node.Input[1])!;
            return new PackedWeight(k, n, MatMulNBits.BlockSize, b.RawData.ToByteArray(), graph.InitializerFloats(node.Input[2]));
        }
        var (solvedModel, solvedReport, _) = CliRunner.Quantize(dir, "gptq", path, "--calib", calib, "--batch", "4", "--weight-storage", "int4", "--refine", "off");
        var (nearestModel, nearestReport, _) = CliRunner.Quantize(dir, "nearest", path, "--calib", calib, "--batch", "4", "--weight-storage", "int4", "--int4-rounding", "nearest", "--refine", "off");
        Assert.Equal("gptq", solvedReport["rewrite"]!["int4_rounding"]!.GetValue<string>());
        Assert.Equal("nearest", nearestReport["rewrite"]!["int4_rounding"]!.GetValue<string>());
        Assert.Equal(1, solvedReport["rewrite"]!["matmul_nbits"]!.GetValue<int>());
        Assert.Equal(MatMulNBits.Pack(w, k, n).Packed, Packed(nearestModel).Packed);
        // Solved on the Gram of the 48 calibration rows: a lower output error on them than nearest rounding.
        double solved = Error(x, 48, w, MatMulNBits.Dequantize(Packed(solvedModel)), k, n), nearest = Error(x, 48, w, MatMulNBits.Dequantize(Packed(nearestModel)), k, n);
        Assert.True(solved < 0.8 * nearest, $"GPTQ {solved:G4} vs nearest {nearest:G4}");

        Hostile.AssertBadInput(CliRunner.Run("quantize", path, "--calib", calib, "--int4-rounding", "gptq", "--quiet"), "--int4-rounding", "--weight-storage int4");
        Hostile.AssertBadInput(CliRunner.Run("quantize", path, "--calib", calib, "--weight-storage", "int4", "--int4-rounding", "best", "--quiet"), "--int4-rounding", "'best'");
    }
}
