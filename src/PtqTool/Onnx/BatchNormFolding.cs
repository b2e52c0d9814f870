using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>A BatchNormalization folded into the Conv before it: the Conv now computes Scale·(conv + b − μ) + β per channel.</summary>
public sealed record FoldedBatchNorm(NodeProto BatchNorm, NodeProto Conv, float[] Scale);

/// <summary>
/// Folds an inference-mode BatchNormalization that directly follows a Conv or ConvTranspose (whose output feeds nothing else) into the
/// Conv's weights and bias: W' = W·γ/√(σ²+ε) per output channel, b' = (b − μ)·γ/√(σ²+ε) + β. The Conv then produces the
/// BatchNormalization's output name, so every downstream tensor keeps its name.
/// </summary>
public static class BatchNormFolding
{
    /// <returns>How many BatchNormalization nodes were folded.</returns>
    public static int Fold(OnnxGraph graph) => FoldAll(graph).Count;

    /// <param name="eligible">Leaves a BatchNormalization alone when this returns false.</param>
    /// <returns>Every folded BatchNormalization with its per-channel scale γ/√(σ²+ε).</returns>
    public static List<FoldedBatchNorm> FoldAll(OnnxGraph graph, Func<NodeProto, bool>? eligible = null)
    {
        var folded = new List<FoldedBatchNorm>();
        foreach (var bn in graph.Graph.Node.Where(n => n.OpType == "BatchNormalization").ToList())
        {
            if (bn.Output.Count > 1 && bn.Output.Skip(1).Any(o => o.Length > 0)) continue; // training-mode outputs
            if (eligible is not null && !eligible(bn)) continue;
            var conv = graph.Producer(bn.Input[0]);
            if (conv is not { OpType: "Conv" or "ConvTranspose" } || graph.Consumers(bn.Input[0]).Count != 1 || graph.IsGraphOutput(bn.Input[0])) continue;
            var w = graph.Initializer(conv.Input[1]);
            var gamma = graph.ConstantValue(bn.Input[1]);
            var beta = graph.ConstantValue(bn.Input[2]);
            var mean = graph.ConstantValue(bn.Input[3]);
            var variance = graph.ConstantValue(bn.Input[4]);
            if (w is null || gamma is null || beta is null || mean is null || variance is null) continue;
            // Shared weights would change every other user too.
            if (graph.Consumers(conv.Input[1]).Count != 1) continue;

            double eps = NodeAttributes.GetFloat(bn, "epsilon", 1e-5f);
            var g = TensorData.ToFloats(gamma, graph.BaseDirectory);
            var bt = TensorData.ToFloats(beta, graph.BaseDirectory);
            var mu = TensorData.ToFloats(mean, graph.BaseDirectory);
            var v = TensorData.ToFloats(variance, graph.BaseDirectory);
            var weights = TensorData.ToFloats(w, graph.BaseDirectory);
            // Output channel of each weight: Conv [M, C/g, k…] → index / per; ConvTranspose [C, M/g, k…] → group·(M/g) + column.
            bool transposed = conv.OpType == "ConvTranspose";
            int group = (int)NodeAttributes.GetInt(conv, "group", 1);
            int channels = transposed ? (int)w.Dims[1] * group : (int)w.Dims[0];
            int per = weights.Length / (int)w.Dims[0];
            int inner = transposed ? per / (int)w.Dims[1] : per, inPerGroup = transposed ? (int)w.Dims[0] / group : 0;
            int ChannelOf(int i) => transposed ? (i / per) / inPerGroup * (int)w.Dims[1] + (i % per) / inner : i / per;
            if (g.Length != channels) continue;
            var bias = ConvParameters.Bias(graph, conv, channels);
            var newWeights = new float[weights.Length];
            var newBias = new float[channels];
            var scale = new float[channels];
            var ks = new double[channels];
            for (int c = 0; c < channels; c++)
            {
                double k = ks[c] = g[c] / Math.Sqrt(v[c] + eps);
                scale[c] = (float)k;
                newBias[c] = (float)((bias[c] - mu[c]) * k + bt[c]);
            }
            for (int i = 0; i < weights.Length; i++) newWeights[i] = (float)(weights[i] * ks[ChannelOf(i)]);
            ConvParameters.Replace(graph, conv, newWeights, newBias, "bnfolded", bn.Output[0]);
            conv.Output[0] = bn.Output[0];
            graph.RemoveNode(bn);
            foreach (var input in bn.Input.Skip(1)) RemoveIfUnused(graph, input);
            folded.Add(new FoldedBatchNorm(bn, conv, scale));
        }
        return folded;
    }

    /// <summary>Removes a constant nobody reads any more: an initializer, a Constant node, or an Identity chain down to one.</summary>
    public static void RemoveIfUnused(OnnxGraph graph, string name)
    {
        if (graph.Consumers(name).Count > 0 || graph.IsGraphOutput(name)) return;
        if (graph.Initializer(name) is not null) { graph.RemoveInitializer(name); return; }
        var producer = graph.Producer(name);
        if (producer is { OpType: "Constant" }) graph.RemoveNode(producer);
        if (producer is { OpType: "Identity" } && graph.ConstantValue(name) is not null)
        {
            graph.RemoveNode(producer);
            RemoveIfUnused(graph, producer.Input[0]);
        }
    }
}
