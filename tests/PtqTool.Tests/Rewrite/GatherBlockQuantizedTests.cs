using Microsoft.ML.OnnxRuntime;
using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Robustness;

namespace PtqTool.Tests.Rewrite;

public class GatherBlockQuantizedTests
{
    private static float[] Random(int n, int seed) { var r = new Random(seed); return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1) * (1 + r.Next(4))).ToArray(); }

    /// <summary>ids int64 [batch, sequence] → Gather(E) → ReduceMean over the sequence → MatMul → y [batch, 4].</summary>
    private static ModelProto Embedder(int rows, int columns, out float[] table)
    {
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "embedder" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        var g = new OnnxGraph(model);
        var ids = new ValueInfoProto { Name = "ids", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementType.Int64, Shape = new TensorShapeProto() } } };
        ids.Type.TensorType.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "batch" });
        ids.Type.TensorType.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = 6 });
        g.Graph.Input.Add(ids);
        table = Random(rows * columns, 7);
        g.AddInitializer(TensorData.FromFloats("E", [rows, columns], table));
        g.AddInitializer(TensorData.FromFloats("W", [columns, 4], Random(columns * 4, 8)));
        g.AddNode(NodeAttributes.Node("Gather", "embed", ["E", "ids"], ["e"]));
        g.AddNode(NodeAttributes.Node("ReduceMean", "pool", ["e"], ["p"], NodeAttributes.Ints("axes", [1]), NodeAttributes.Int("keepdims", 0)));
        g.AddNode(NodeAttributes.Node("MatMul", "head", ["p", "W"], ["y"]));
        g.AddOutput("y");
        return model;
    }

    [Theory]
    [InlineData(4)]
    [InlineData(8)]
    public void Onnx_runtime_gathers_the_rows_the_packing_stands_for(int bits)
    {
        const int rows = 40, columns = 80; // blocks of 32, 32 and a partial 16 in every row
        var table = Random(rows * columns, bits);
        var p = GatherBlockQuantized.Pack(table, rows, columns, bits);
        var back = GatherBlockQuantized.Dequantize(p);
        int z = 1 << (bits - 1);
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < columns; j++)
            {
                int b = j / 32;
                float max = Enumerable.Range(b * 32, Math.Min(32, columns - b * 32)).Max(c => Math.Abs(table[r * columns + c]));
                float s = p.Scales[r * 3 + b];
                Assert.Equal(max / (z - 1), s, 6);
                Assert.InRange(Math.Abs(back[r * columns + j] - table[r * columns + j]), 0, s / 2 + 1e-6f);
            }

        var (model, g) = TestModels.WithFloatInput("gbq", [2, 3]);
        g.Graph.Input[0].Type.TensorType.ElemType = ElementType.Int64;
        var (data, scales) = GatherBlockQuantized.AddInitializers(g, "E", p);
        g.AddNode(GatherBlockQuantized.Node("gather", data, scales, "x", "y", p));
        g.AddOutput("y");
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = MatMulNBits.Domain, Version = 1 });
        long[] indices = [0, 39, 7, 7, 21, 1];
        using var runner = OrtRunner.FromModel(model, new RunnerOptions { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL });
        var y = runner.Run(new FloatTensor(indices.Select(i => (float)i).ToArray(), [2, 3]), ["y"])["y"];
        Assert.Equal([2, 3, columns], y.Shape);
        for (int k = 0; k < indices.Length; k++)
            for (int j = 0; j < columns; j++)
                Assert.Equal(back[indices[k] * columns + j], y.Data[k * columns + j]);
    }

    [Fact]
    public void Quantize_runs_the_embedding_table_as_gather_block_quantized_and_keeps_the_rest_of_the_graph()
    {
        const int rows = 300, columns = 64;
        string dir = Repo.TempDir(), path = Path.Combine(dir, "m.onnx"), calib = Path.Combine(dir, "calib");
        var model = Embedder(rows, columns, out var table);
        OnnxModelFile.Save(model, path);
        Directory.CreateDirectory(calib);
        var rng = new Random(2);
        for (int i = 0; i < 24; i++)
            File.WriteAllBytes(Path.Combine(calib, $"s{i:D2}.npz"), NpzWriter.Write([("ids", NpyReader.Write(Enumerable.Range(0, 6).Select(_ => (long)rng.Next(rows)).ToArray(), [1, 6]))]));

        foreach (var (args, bits) in new[] { (Array.Empty<string>(), 8), (new[] { "--weight-storage", "int4" }, 4), (new[] { "--embedding-bits", "4" }, 4) })
        {
            var (quantized, report, _) = CliRunner.Quantize(dir, $"q{bits}{args.Length}", [path, "--calib", calib, "--refine", "off", .. args]);
            var node = Assert.Single(quantized.Graph.Node, n => n.OpType == "GatherBlockQuantized");
            Assert.Equal(MatMulNBits.Domain, node.Domain);
            Assert.Equal(bits, NodeAttributes.GetInt(node, "bits", 0));
            Assert.DoesNotContain(quantized.Graph.Initializer, t => t.Name == "E");
            Assert.Equal(1, report["rewrite"]!["quantized_tables"]!.GetValue<int>());
            Assert.Equal(bits, report["options"]!["embedding_bits"]!.GetValue<int>());

            // The same model with a float Gather of the table the packing stands for gives the same outputs in ONNX Runtime.
            var reference = quantized.Clone();
            var rg = new OnnxGraph(reference);
            rg.AddInitializer(TensorData.FromFloats("E_dequantized_reference", [rows, columns], GatherBlockQuantized.Dequantize(GatherBlockQuantized.Pack(table, rows, columns, bits))));
            int at = reference.Graph.Node.ToList().FindIndex(n => n.OpType == "GatherBlockQuantized");
            reference.Graph.Node[at] = NodeAttributes.Node("Gather", "embed", ["E_dequantized_reference", node.Input[1]], [node.Output[0]]);
            var ids = new FloatTensor(Enumerable.Range(0, 4 * 6).Select(i => (float)(i * 37 % rows)).ToArray(), [4, 6]);
            var options = new RunnerOptions { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL };
            using var a = OrtRunner.FromModel(quantized, options);
            using var b = OrtRunner.FromModel(reference, options);
            Assert.Equal(b.Run(ids)["y"].Data, a.Run(ids)["y"].Data);
        }

        var (plain, offReport, _) = CliRunner.Quantize(dir, "off", path, "--calib", calib, "--refine", "off", "--embedding-bits", "off");
        Assert.Contains(plain.Graph.Node, n => n.OpType == "Gather" && n.Input[0] == "E");
        Assert.Equal(0, offReport["rewrite"]!["quantized_tables"]!.GetValue<int>());
        Hostile.AssertBadInput(CliRunner.Run("quantize", path, "--calib", calib, "--embedding-bits", "6", "--quiet"), "--embedding-bits", "'6'");
    }
}
