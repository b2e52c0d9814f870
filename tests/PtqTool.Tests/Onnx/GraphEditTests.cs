using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Tests.Onnx;

public class GraphEditTests
{
    [Fact]
    public void Inserted_node_changes_the_output_as_onnx_runtime_computes_it()
    {
        var graph = OnnxGraph.Load(Repo.Model("fmnist_cnn"));
        var input = RoundTripTests.RandomInput(3, 2);
        float[] before;
        using (var runner = OrtRunner.FromModel(graph.Model)) before = runner.Run(input)["logits"].Data;

        // logits → Mul(·, 3) → logits, with the old producer writing an inner name.
        string inner = graph.UniqueName("logits_unscaled");
        graph.Producer("logits")!.Output[0] = inner;
        graph.AddInitializer(TensorData.Scalar("three", 3f));
        graph.AddNode(NodeAttributes.Node("Mul", "scale_logits", [inner, "three"], ["logits"]));
        graph.SortNodes();
        using var edited = OrtRunner.FromModel(graph.Model);
        var after = edited.Run(input)["logits"].Data;
        for (int i = 0; i < before.Length; i++) Assert.Equal(3 * before[i], after[i], 1e-4f);
    }

    [Fact]
    public void Exposed_intermediate_tensor_feeds_the_final_gemm_as_computed_by_hand()
    {
        var graph = OnnxGraph.Load(Repo.Model("fmnist_cnn"));
        var gemm = graph.Graph.Node.Single(n => n.OpType == "Gemm");
        string features = gemm.Input[0];
        graph.AddOutput(features);
        using var runner = OrtRunner.FromModel(graph.Model);
        var input = RoundTripTests.RandomInput(2, 3);
        var outputs = runner.Run(input, [features, "logits"]);
        var x = outputs[features];
        float[] w = graph.InitializerFloats(gemm.Input[1]), b = graph.InitializerFloats(gemm.Input[2]);
        int k = x.SampleSize, n = b.Length;
        Assert.Equal(1, NodeAttributes.GetInt(gemm, "transB", 0)); // W is [n, k]
        for (int s = 0; s < 2; s++)
            for (int j = 0; j < n; j++)
            {
                double y = b[j];
                for (int i = 0; i < k; i++) y += x.Data[s * k + i] * w[j * k + i];
                Assert.Equal(y, outputs["logits"].Data[s * n + j], 1e-3);
            }
    }

    [Fact]
    public void Held_outputs_keep_their_values_after_the_input_array_is_reused()
    {
        // ONNX Runtime may hand back the feed itself (a graph input exposed as an output) or a view of it (Reshape):
        // outputs held past the run (calibration bins them while the next batch runs) must not read the caller's array.
        var graph = OnnxGraph.Load(Repo.Model("fmnist_cnn"));
        string inputName = graph.Graph.Input[0].Name;
        graph.AddInitializer(new TensorProto { Name = "flat_shape", DataType = (int)TensorProto.Types.DataType.Int64, Dims = { 2 }, Int64Data = { 0, -1 } });
        graph.AddNode(NodeAttributes.Node("Reshape", "flatten_input", [inputName, "flat_shape"], ["input_flat"]));
        graph.AddOutput(inputName);
        graph.AddOutput("input_flat");
        using var runner = OrtRunner.FromModel(graph.Model);
        var input = RoundTripTests.RandomInput(2, 5);
        var expected = (float[])input.Data.Clone();
        using var held = runner.RunHeld(input, [inputName, "input_flat", "logits"]);
        Array.Fill(input.Data, 7f);
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        int visited = 0;
        held.Visit((name, data, _) =>
        {
            if (name == "logits") return;
            Assert.Equal(expected, data.ToArray());
            visited++;
        });
        Assert.Equal(2, visited);
    }

    [Fact]
    public void Topological_order_producers_consumers_and_rename_agree()
    {
        var graph = OnnxGraph.Load(Repo.Model("fmnist_resnet"));
        var order = graph.TopologicalOrder();
        var seen = new HashSet<string>(graph.Graph.Input.Select(i => i.Name).Concat(graph.Graph.Initializer.Select(t => t.Name)));
        foreach (var node in order)
        {
            Assert.All(node.Input.Where(i => i.Length > 0), i => Assert.Contains(i, seen));
            foreach (var o in node.Output) seen.Add(o);
        }
        var add = graph.Graph.Node.First(n => n.OpType == "Add");
        Assert.Same(add, graph.Producer(add.Output[0]));
        Assert.Contains(graph.Consumers(add.Input[0]), n => ReferenceEquals(n, add));
        graph.RenameTensor(add.Output[0], "renamed_sum");
        Assert.Same(add, graph.Producer("renamed_sum"));
        Assert.NotEmpty(graph.Consumers("renamed_sum"));
        Assert.Equal(13, graph.OpsetVersion());
        using var runner = OrtRunner.FromModel(graph.Model); // still a valid model
    }

    [Fact]
    public void Fixed_batch_of_one_models_run_any_batch_in_chunks()
    {
        var model = OnnxModelFile.Load(Repo.Model("fmnist_cnn"));
        var fixedModel = model.Clone();
        foreach (var v in fixedModel.Graph.Input.Concat(fixedModel.Graph.Output))
            v.Type.TensorType.Shape.Dim[0] = new TensorShapeProto.Types.Dimension { DimValue = 1 };
        using var dynamic = OrtRunner.FromModel(model);
        using var one = OrtRunner.FromModel(fixedModel);
        Assert.Equal(1, one.InputShape("input")[0]);
        Assert.Equal(-1, dynamic.InputShape("input")[0]);
        var input = RoundTripTests.RandomInput(5, 4);
        var a = dynamic.Run(input)["logits"];
        var b = one.Run(input)["logits"];
        Assert.Equal([5, 10], b.Shape);
        for (int i = 0; i < a.Data.Length; i++) Assert.Equal(a.Data[i], b.Data[i], 1e-4f);

        // An output without a batch axis cannot be joined from chunks: a clear error, not an index out of range.
        var graph = new OnnxGraph(fixedModel.Clone());
        graph.AddNode(NodeAttributes.Node("ReduceSum", "total", ["logits"], ["total"], NodeAttributes.Int("keepdims", 0)));
        graph.AddOutput("total");
        using var scalar = OrtRunner.FromModel(graph.Model);
        var e = Assert.Throws<PtqException>(() => scalar.Run(input, ["total"]));
        Assert.Contains("'total' has no batch axis", e.Message);
    }
}
