using PtqTool.Distill;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Tests.Distill;

/// <summary>
/// The gradient graph folds each Conv→BatchNormalization and matches statistics at the BN output with rescaled
/// targets; its loss must still be the ZeroQ loss of the model's own BN inputs, computed here in double from a plain
/// forward run of the original model.
/// </summary>
public class ZeroQLossTests
{
    private static double ReferenceLoss(ModelProto model, FloatTensor x)
    {
        var graph = new OnnxGraph(model.Clone());
        var bns = graph.Graph.Node.Where(n => n.OpType == "BatchNormalization").ToList();
        foreach (var bn in bns) graph.AddOutput(bn.Input[0]);
        using var runner = OrtRunner.FromModel(graph.Model, new RunnerOptions { Optimization = Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_DISABLE_ALL });
        var outputs = runner.Run(x, bns.Select(b => b.Input[0]).Distinct().ToList());
        double loss = 0;
        foreach (var bn in bns)
        {
            var a = outputs[bn.Input[0]];
            float[] mu = TensorData.ToFloats(graph.ConstantValue(bn.Input[3])!), variance = TensorData.ToFloats(graph.ConstantValue(bn.Input[4])!);
            var (mean, sd) = BatchStatistics.PerChannel(a);
            for (int c = 0; c < mean.Length; c++)
                loss += (mean[c] - mu[c]) * (mean[c] - mu[c]) + (sd[c] - Math.Sqrt(variance[c])) * (sd[c] - Math.Sqrt(variance[c]));
        }
        return loss;
    }

    private static (double Graph, double Reference, int BatchNormsLeft) Compare(ModelProto model, int[] shape, int seed)
    {
        var zeroq = GradientGraphBuilder.Build(model, shape);
        var x = new FloatTensor(ZeroQDistiller.Gaussian(FloatTensor.Count(shape), seed), shape);
        using var runner = OrtRunner.FromModel(zeroq.Model);
        double graphLoss = runner.Run(x, [zeroq.Loss])[zeroq.Loss].Data[0];
        return (graphLoss, ReferenceLoss(model, x), zeroq.Model.Graph.Node.Count(n => n.OpType == "BatchNormalization"));
    }

    [Fact]
    public void Folded_and_unfolded_batchnorms_give_the_loss_of_the_models_own_batchnorm_inputs()
    {
        // Conv→BN (γ of both signs) folds; BN after an Add and BN on MatMul features cannot.
        var m = new TinyModels([6, 3, 8, 8], 11);
        string a = m.Op("Relu", [m.BatchNorm(m.Conv("x", 3, 4, 3, pads: [1, 1, 1, 1]), 4, mixedSigns: true)]);
        string b = m.Op("Relu", [m.BatchNorm(m.Conv(a, 4, 4, 3, pads: [1, 1, 1, 1]), 4)]);
        string sum = m.BatchNorm(m.Op("Add", [a, b]), 4);
        string flat = m.Op("Flatten", [m.Op("GlobalAveragePool", [sum])]);
        var model = m.Finish(m.BatchNorm(m.Op("MatMul", [flat, m.Weight(4, 5)]), 5, mixedSigns: true));
        var (graph, reference, left) = Compare(model, m.InputShape, 3);
        // The BN after the Add stays (the MatMul needs its output); the last one's output feeds nothing the loss needs.
        Assert.Equal(1, left);
        Assert.True(Math.Abs(graph - reference) <= 1e-4 * reference, $"graph {graph}, reference {reference}");
    }

    [Fact]
    public void A_model_exported_with_batch_one_is_distilled_on_the_statistics_of_the_whole_batch()
    {
        var model = OnnxModelFile.Load(Repo.Model("fmnist_cnn"));
        var fixedBatch = new OnnxGraph(model.Clone());
        foreach (var info in fixedBatch.Graph.Input.Concat(fixedBatch.Graph.Output))
            info.Type.TensorType.Shape.Dim[0] = new TensorShapeProto.Types.Dimension { DimValue = 1 };
        int[] shape = [8, 1, 28, 28];
        var zeroq = GradientGraphBuilder.Build(fixedBatch.Model, shape);
        var x = new FloatTensor(ZeroQDistiller.Gaussian(FloatTensor.Count(shape), 9), shape);
        using var runner = OrtRunner.FromModel(zeroq.Model);
        var outputs = runner.Run(x, [zeroq.Loss, zeroq.Gradient]);
        double reference = ReferenceLoss(model, x);
        Assert.True(Math.Abs(outputs[zeroq.Loss].Data[0] - reference) <= 1e-4 * reference, $"graph {outputs[zeroq.Loss].Data[0]}, reference over the batch {reference}");
        Assert.Equal(shape, outputs[zeroq.Gradient].Shape);
    }

    [Theory]
    [InlineData("fmnist_cnn")]
    [InlineData("fmnist_resnet")]
    public void Bundled_models_give_the_loss_of_their_own_batchnorm_inputs(string name)
    {
        var model = OnnxModelFile.Load(Repo.Model(name));
        var (graph, reference, left) = Compare(model, [8, 1, 28, 28], 5);
        Assert.Equal(0, left);
        Assert.True(Math.Abs(graph - reference) <= 1e-4 * reference, $"graph {graph}, reference {reference}");
    }
}
