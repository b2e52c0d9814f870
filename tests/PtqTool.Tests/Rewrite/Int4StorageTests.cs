using Microsoft.ML.OnnxRuntime;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Rewrite;

/// <summary>INT4 weight storage: packed values round-trip through ONNX Runtime, and the stored model means what the int8-stored one does.</summary>
public class Int4StorageTests
{
    [Fact]
    public void Onnx_runtime_dequantizes_packed_int4_to_the_codes_times_the_scale_odd_length_and_negatives_included()
    {
        int[] codes = [-8, 7, -1, 0, 3, -5, 6]; // 7 values: the last byte holds one nibble
        var model = new ModelProto { IrVersion = 10, Graph = new GraphProto { Name = "dq" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 21 });
        var g = new OnnxGraph(model);
        g.AddInitializer(TensorData.FromInt4("w", [7], codes, signed: true));
        g.AddInitializer(TensorData.FromFloats("s", [], [0.25f]));
        g.AddInitializer(TensorData.FromInt4("z", [], [0], signed: true));
        var input = new ValueInfoProto { Name = "x", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementType.Float, Shape = new TensorShapeProto() } } };
        input.Type.TensorType.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = 7 });
        g.Graph.Input.Add(input);
        g.AddNode(NodeAttributes.Node("DequantizeLinear", "dq", ["w", "s", "z"], ["wf"]));
        g.AddNode(NodeAttributes.Node("Add", "add", ["wf", "x"], ["y"]));
        g.AddOutput("y");
        using var runner = OrtRunner.FromModel(model, new RunnerOptions { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL });
        var y = runner.Run(new FloatTensor(new float[7], [7]))["y"].Data;
        Assert.Equal(codes.Select(c => c * 0.25f).ToArray(), y);
        // ptq's own decoder reads the packed tensor back to the same codes.
        Assert.Equal(codes.Select(c => (float)c).ToArray(), TensorData.ToFloats(g.Initializer("w")!));
    }

    [Fact]
    public void The_int4_model_computes_exactly_what_the_int8_stored_model_does_and_is_smaller()
    {
        string dir = Repo.TempDir(), int8 = Path.Combine(dir, "w4-int8.onnx"), int4 = Path.Combine(dir, "w4-int4.onnx");
        foreach (var (path, storage) in new[] { (int8, "int8"), (int4, "int4") })
        {
            var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--calib", Repo.CalibDir, "--limit", "64", "--weight-bits", "4",
                "--weight-storage", storage, "--out", path, "--quiet");
            Assert.True(code == 0, err);
        }
        var packed = OnnxModelFile.Load(int4);
        Assert.Equal(21, new OnnxGraph(packed).OpsetVersion());
        Assert.Contains(packed.Graph.Initializer, t => t.DataType == ElementType.Int4);
        Assert.True(new FileInfo(int4).Length < 0.8 * new FileInfo(int8).Length, $"{new FileInfo(int4).Length} vs {new FileInfo(int8).Length} bytes");
        // Exact QDQ semantics (no fusion): the same dequantized weights, so bit-identical outputs.
        var options = new RunnerOptions { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var a = OrtRunner.FromModel(OnnxModelFile.Load(int8), options);
        using var b = OrtRunner.FromModel(packed, options);
        var rng = new Random(9);
        var x = new FloatTensor(Enumerable.Range(0, 8 * 28 * 28).Select(_ => (float)rng.NextDouble()).ToArray(), [8, 1, 28, 28]);
        Assert.Equal(a.Run(x)[a.OutputNames[0]].Data, b.Run(x)[b.OutputNames[0]].Data);
    }

    [Fact]
    public void An_op_that_changed_between_opsets_13_and_21_is_refused_by_name()
    {
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "m" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        model.Graph.Node.Add(NodeAttributes.Node("ReduceMean", "mean", ["x"], ["y"], NodeAttributes.Ints("axes", [1])));
        var e = Assert.Throws<PtqException>(() => Int4Storage.Apply(model));
        Assert.Contains("ReduceMean", e.Message);
    }
}
