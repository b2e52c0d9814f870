using Microsoft.ML.OnnxRuntime;
using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Rewrite;

public class MatMulNBitsTests
{
    private static float[] Random(int n, int seed) { var r = new Random(seed); return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray(); }

    [Fact]
    public void Packed_codes_are_nearest_rounding_per_block_within_half_a_step()
    {
        const int k = 80, n = 6; // two full blocks of 32 and a partial one of 16
        var w = Random(k * n, 1);
        var p = MatMulNBits.Pack(w, k, n);
        Assert.Equal(n * 3 * 16, p.Packed.Length);
        var back = MatMulNBits.Dequantize(p);
        for (int i = 0; i < k; i++)
            for (int c = 0; c < n; c++)
            {
                float s = p.Scales[c * 3 + i / 32];
                float max = Enumerable.Range(i / 32 * 32, Math.Min(32, k - i / 32 * 32)).Max(j => Math.Abs(w[j * n + c]));
                Assert.Equal(max / 7, s, 6);
                Assert.InRange(Math.Abs(back[i * n + c] - w[i * n + c]), 0, s / 2 + 1e-6f);
            }
    }

    [Fact]
    public void Onnx_runtime_reads_the_packing_as_the_weights_it_stands_for()
    {
        const int k = 80, n = 6, m = 3;
        var p = MatMulNBits.Pack(Random(k * n, 2), k, n);
        var (model, g) = TestModels.WithFloatInput("nbits", [m, k]);
        g.AddNode(MatMulNBits.Node(g, "mm", "x", "y", p, accuracyLevel: 0));
        g.AddOutput("y");
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = MatMulNBits.Domain, Version = 1 });
        var a = Random(m * k, 3);
        using var runner = OrtRunner.FromModel(model, new RunnerOptions { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL });
        var y = runner.Run(new FloatTensor(a, [m, k]), ["y"])["y"];
        Assert.Equal([m, n], y.Shape);
        var w = MatMulNBits.Dequantize(p);
        for (int r = 0; r < m; r++)
            for (int c = 0; c < n; c++)
            {
                double expected = 0;
                for (int i = 0; i < k; i++) expected += a[r * k + i] * (double)w[i * n + c];
                Assert.Equal(expected, y.Data[r * n + c], 4);
            }
    }

    [Fact]
    public void Weight_storage_int4_runs_matmul_weights_as_matmulnbits_end_to_end()
    {
        string dir = Repo.TempDir(), path = Path.Combine(dir, "m.onnx"), calib = Path.Combine(dir, "calib");
        var (model, g) = TestModels.WithFloatInput("int4_matmul", [4, 3, 32]);
        g.Graph.Input[0].Type.TensorType.Shape.Dim[0] = new TensorShapeProto.Types.Dimension { DimParam = "batch" };
        g.AddInitializer(TensorData.FromFloats("W", [32, 6], Random(32 * 6, 4)));
        g.AddInitializer(TensorData.FromFloats("b", [6], Random(6, 5)));
        g.AddNode(NodeAttributes.Node("MatMul", "dense", ["x", "W"], ["h"]));
        g.AddNode(NodeAttributes.Node("Add", "bias", ["h", "b"], ["y"]));
        g.AddOutput("y");
        OnnxModelFile.Save(model, path);
        Directory.CreateDirectory(calib);
        File.WriteAllBytes(Path.Combine(calib, "x.npy"), NpyReader.Write(Random(16 * 3 * 32, 6), [16, 3, 32]));
        var (quantized, report, _) = CliRunner.Quantize(dir, "q", path, "--calib", calib, "--batch", "4", "--weight-storage", "int4");
        Assert.Contains(quantized.Graph.Node, n => n.OpType == "MatMulNBits" && n.Domain == MatMulNBits.Domain);
        Assert.DoesNotContain(quantized.Graph.Node, n => n.OpType is "MatMul" or "QuantizeLinear" or "DequantizeLinear");
        Assert.Contains("MatMulNBits", report["rewrite"]!["weight_storage"]!.GetValue<string>());
        Assert.True(report["evaluation"]!["output_sqnr_db"]!.GetValue<double>() > 15);
    }
}
