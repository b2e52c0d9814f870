using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;
using PtqTool.Rewrite.Handlers;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Data;

namespace PtqTool.Tests.Rewrite;

public class FloatJoinTests
{
    [Fact]
    public void Mask_paths_are_the_nodes_that_build_or_apply_the_mask()
    {
        var graph = new OnnxGraph(TwoInputModel.Build());
        var names = MaskPaths.Find(graph).Select(n => n.Name).Order(StringComparer.Ordinal);
        Assert.Equal(["mask_axis", "mask_float", "masked"], names);
        var plan = PlanBuilder.Build(graph, new QuantizationOptions());
        Assert.DoesNotContain("m3", plan.QdqTensors);
        Assert.DoesNotContain("em", plan.QdqTensors);
        Assert.Contains("x", plan.QdqTensors);
    }

    /// <summary>x [N, 3, 8] → MatMul(W) → Add(b) → ReduceSum over the last axis (no integer kernel) → y [N, 3].</summary>
    private static ModelProto MatMulIntoFloat()
    {
        // A symbolic batch, as transformer exports have: with every dimension fixed, ONNX Runtime's MatMul + Add
        // fusion would make a float Gemm of it before its QDQ fusion sees it.
        var (model, g) = TestModels.WithFloatInput("into_float", [4, 3, 8]);
        g.Graph.Input[0].Type.TensorType.Shape.Dim[0] = new TensorShapeProto.Types.Dimension { DimParam = "batch" };
        var rng = new Random(2);
        g.AddInitializer(TensorData.FromFloats("W", [8, 6], Enumerable.Range(0, 48).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray()));
        g.AddInitializer(TensorData.FromFloats("b", [6], Enumerable.Range(0, 6).Select(_ => (float)rng.NextDouble()).ToArray()));
        g.AddInitializer(TensorData.FromInt64("axis", [1], [-1]));
        g.AddNode(NodeAttributes.Node("MatMul", "dense", ["x", "W"], ["h"]));
        g.AddNode(NodeAttributes.Node("Add", "bias", ["h", "b"], ["hb"]));
        g.AddNode(NodeAttributes.Node("ReduceSum", "sum", ["hb", "axis"], ["y"], NodeAttributes.Int("keepdims", 0)));
        g.AddOutput("y");
        return model;
    }

    [Fact]
    public void An_add_no_quantized_node_reads_stays_float_and_its_matmul_runs_as_integer_to_float()
    {
        string dir = Repo.TempDir();
        string path = Path.Combine(dir, "m.onnx");
        OnnxModelFile.Save(MatMulIntoFloat(), path);
        var plan = PlanBuilder.Build(new OnnxGraph(MatMulIntoFloat()), new QuantizationOptions());
        Assert.Equal(1, plan.FloatJoins);
        Assert.Equal(["x"], plan.QdqTensors.Order(StringComparer.Ordinal));

        string calib = Path.Combine(dir, "calib");
        Directory.CreateDirectory(calib);
        var rng = new Random(3);
        File.WriteAllBytes(Path.Combine(calib, "s.npy"), NpyReader.Write(Enumerable.Range(0, 64 * 24).Select(_ => (float)rng.NextDouble() * 2 - 1).ToArray(), [64, 3, 8]));
        var (quantized, _, _) = CliRunner.Quantize(dir, "q", path, "--calib", calib, "--batch", "4");
        var q = new OnnxGraph(quantized);
        Assert.DoesNotContain(q.Graph.Node, n => n.OpType == "QuantizeLinear" && n.Input[0] is "h" or "hb");
        // What ONNX Runtime makes of it, from the optimized graph it writes itself.
        string optimized = Path.Combine(dir, "optimized.onnx");
        using (OrtRunner.FromModel(quantized, new RunnerOptions { OptimizedModelPath = optimized })) { }
        var ops = OnnxModelFile.Load(optimized).Graph.Node.Select(n => n.OpType).ToList();
        Assert.Contains("MatMulIntegerToFloat", ops);
        Assert.DoesNotContain("MatMul", ops);
    }

    [Fact]
    public void A_two_dimensional_matmul_keeps_its_quantized_output()
    {
        // ONNX Runtime fuses a 2-D MatMul + Add into a float Gemm before QDQ fusion, so there the output stays quantized.
        var (model, g) = TestModels.WithFloatInput("two_d", [4, 8]);
        g.AddInitializer(TensorData.FromFloats("W", [8, 6], Enumerable.Range(0, 48).Select(i => (i % 7 - 3) / 8f).ToArray()));
        g.AddInitializer(TensorData.FromFloats("b", [6], [0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f]));
        g.AddInitializer(TensorData.FromInt64("axis", [1], [-1]));
        g.AddNode(NodeAttributes.Node("MatMul", "dense", ["x", "W"], ["h"]));
        g.AddNode(NodeAttributes.Node("Add", "bias", ["h", "b"], ["hb"]));
        g.AddNode(NodeAttributes.Node("ReduceSum", "sum", ["hb", "axis"], ["y"], NodeAttributes.Int("keepdims", 0)));
        g.AddOutput("y");
        var plan = PlanBuilder.Build(new OnnxGraph(model), new QuantizationOptions());
        Assert.Equal(["h", "x"], plan.QdqTensors.Order(StringComparer.Ordinal));
    }
}
