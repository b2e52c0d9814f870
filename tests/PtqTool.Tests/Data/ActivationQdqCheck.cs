using Microsoft.ML.OnnxRuntime;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Tests.Data;

/// <summary>
/// Checks a quantized model's activation quantizers against ONNX's exact QDQ semantics: each activation
/// QuantizeLinear's input and its DequantizeLinear's output exposed as graph outputs, one feed run in ONNX Runtime
/// with graph optimizations off, and every element of the DQ output equal to s·(clip(round(x/s) + z) − z) of its input.
/// </summary>
public static class ActivationQdqCheck
{
    /// <summary>The QuantizeLinear nodes of activations (not of weights), in graph order.</summary>
    public static List<NodeProto> Quantizers(OnnxGraph graph) =>
        graph.Graph.Node.Where(n => n.OpType == "QuantizeLinear" && graph.Initializer(n.Input[0]) is null).ToList();

    /// <summary>Runs <paramref name="feed"/> through a copy of <paramref name="model"/> and asserts every activation quantizer's semantics.</summary>
    public static void Exact(ModelProto model, ModelFeed feed)
    {
        var graph = new OnnxGraph(model.Clone());
        var quantizers = Quantizers(graph);
        Assert.NotEmpty(quantizers);
        var dqs = quantizers.Select(q => graph.Consumers(q.Output[0]).Single(c => c.OpType == "DequantizeLinear")).ToList();
        foreach (var q in quantizers) graph.AddOutput(q.Input[0]);
        foreach (var dq in dqs) graph.AddOutput(dq.Output[0]);
        using var runner = OrtRunner.FromModel(graph.Model, new RunnerOptions { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL });
        var outputs = runner.Run(feed, [.. quantizers.Select(q => q.Input[0]), .. dqs.Select(d => d.Output[0])]);
        for (int k = 0; k < quantizers.Count; k++)
        {
            var q = quantizers[k];
            float s = TensorData.ToFloats(graph.Initializer(q.Input[1])!)[0];
            var zeroPoint = graph.Initializer(q.Input[2])!;
            int z = (int)TensorData.ToFloats(zeroPoint)[0];
            var (lo, hi) = zeroPoint.DataType == ElementType.UInt8 ? (0, 255) : (-128, 127);
            var x = outputs[q.Input[0]].Data;
            var got = outputs[dqs[k].Output[0]].Data;
            Assert.Equal(x.Length, got.Length);
            for (int i = 0; i < x.Length; i++)
                Assert.Equal(s * (Math.Clamp(MathF.Round(x[i] / s, MidpointRounding.ToEven) + z, lo, hi) - z), got[i], 1e-6f);
        }
    }
}
