namespace PtqTool.Onnx;

/// <summary>One equalized pair: the first Conv's output channels feed the second's input channels, through a Relu or nothing.</summary>
public sealed record EqualizedPair(string First, string Second, int Channels);

/// <summary>
/// Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization and Bias
/// Correction"): for Conv₁ → (Relu) → Conv₂, Relu(x/s) = Relu(x)/s for s > 0, so dividing Conv₁'s output channel i
/// (weights and bias) by s_i and multiplying Conv₂'s input channel i by s_i leaves the float function unchanged.
/// With s_i = √(r₁ᵢ / r₂ᵢ), r₁ᵢ = max|W₁[i,…]| and r₂ᵢ = max|W₂[:, i, …]|, both ranges become √(r₁ᵢ·r₂ᵢ): a depthwise
/// layer's channels no longer span orders of magnitude, which per-tensor weight scales (and the activation between
/// them) cannot resolve. Chains (Conv → depthwise → Conv) are swept until the scales settle. Clip (ReLU6) is not
/// positively homogeneous, so such pairs are left alone rather than changing the model.
/// </summary>
public static class CrossLayerEqualization
{
    public const int MaxSweeps = 20;
    /// <summary>A sweep whose largest |ln s| is under this ends the iteration.</summary>
    public const double Settled = 1e-4;

    public static List<EqualizedPair> Apply(OnnxGraph graph)
    {
        var pairs = Pairs(graph);
        if (pairs.Count == 0) return [];
        var layouts = pairs.Select(p => InputLayout.Of(graph.Initializer(p.Second.Input[1])!, NodeAttributes.GetInt(p.Second, "group", 1))).ToArray();
        var weights = new Dictionary<string, float[]>(StringComparer.Ordinal);
        float[] Weights(string name) => weights.TryGetValue(name, out var w) ? w : weights[name] = graph.InitializerFloats(name);
        for (int sweep = 0; sweep < MaxSweeps; sweep++)
        {
            double largest = 0;
            for (int pair = 0; pair < pairs.Count; pair++)
            {
                var (first, second, layout2) = (pairs[pair].First, pairs[pair].Second, layouts[pair]);
                var w1 = Weights(first.Input[1]);
                var w2 = Weights(second.Input[1]);
                float[]? b1 = first.Input.Count > 2 && first.Input[2].Length > 0 ? Weights(first.Input[2]) : null;
                int channels = layout2.Channels, per1 = w1.Length / channels;
                var r1 = new double[channels];
                var r2 = new double[channels];
                for (int i = 0; i < w1.Length; i++) r1[i / per1] = Math.Max(r1[i / per1], Math.Abs(w1[i]));
                for (int i = 0; i < w2.Length; i++) { int c = layout2.ChannelOf(i); r2[c] = Math.Max(r2[c], Math.Abs(w2[i])); }
                var s = new double[channels];
                for (int c = 0; c < channels; c++)
                {
                    s[c] = r1[c] > 0 && r2[c] > 0 ? Math.Sqrt(r1[c] / r2[c]) : 1;
                    largest = Math.Max(largest, Math.Abs(Math.Log(s[c])));
                }
                for (int i = 0; i < w1.Length; i++) w1[i] = (float)(w1[i] / s[i / per1]);
                if (b1 is not null) for (int c = 0; c < channels; c++) b1[c] = (float)(b1[c] / s[c]);
                for (int i = 0; i < w2.Length; i++) w2[i] = (float)(w2[i] * s[layout2.ChannelOf(i)]);
            }
            if (largest < Settled) break;
        }
        foreach (var (name, values) in weights)
            graph.ReplaceInitializer(TensorData.FromFloats(name, TensorData.Shape(graph.Initializer(name)!), values));
        return [.. pairs.Select((p, i) => new EqualizedPair(p.First.Name, p.Second.Name, layouts[i].Channels))];
    }

    /// <summary>
    /// Conv₁ → (Relu) → Conv₂ where each link has that one reader and is no graph output, both weights (and Conv₁'s bias)
    /// are initializers no other node reads, and Conv₂'s input channels are Conv₁'s output channels.
    /// </summary>
    public static List<(Proto.NodeProto First, Proto.NodeProto Second)> Pairs(OnnxGraph graph)
    {
        var pairs = new List<(Proto.NodeProto, Proto.NodeProto)>();
        foreach (var first in graph.TopologicalOrder())
        {
            if (!OwnWeights(graph, first)) continue;
            string link = first.Output[0];
            if (!SoleReader(graph, link, out var next)) continue;
            if (next.OpType == "Relu")
            {
                link = next.Output[0];
                if (!SoleReader(graph, link, out next)) continue;
            }
            if (!OwnWeights(graph, next) || next.Input[0] != link) continue;
            long outChannels = graph.Initializer(first.Input[1])!.Dims[0];
            if (InputLayout.Of(graph.Initializer(next.Input[1])!, NodeAttributes.GetInt(next, "group", 1)).Channels != outChannels) continue;
            bool hasBias = first.Input.Count > 2 && first.Input[2].Length > 0;
            if (hasBias && TensorData.ElementCount(graph.Initializer(first.Input[2])!) != outChannels) continue;
            pairs.Add((first, next));
        }
        return pairs;
    }

    private static bool SoleReader(OnnxGraph graph, string tensor, out Proto.NodeProto reader)
    {
        var readers = graph.Consumers(tensor);
        reader = readers.Count == 1 ? readers[0] : null!;
        return readers.Count == 1 && !graph.IsGraphOutput(tensor);
    }

    /// <summary>A Conv whose float weight (and bias) are initializers only it reads.</summary>
    private static bool OwnWeights(OnnxGraph graph, Proto.NodeProto node)
    {
        if (node.OpType != "Conv" || node.Input.Count < 2) return false;
        if (graph.Initializer(node.Input[1]) is not { DataType: ElementType.Float } w || w.Dims.Count < 3 || graph.Consumers(node.Input[1]).Count != 1) return false;
        return node.Input.Count < 3 || node.Input[2].Length == 0
            || graph.Initializer(node.Input[2]) is { DataType: ElementType.Float } && graph.Consumers(node.Input[2]).Count == 1;
    }

    /// <summary>Which input channel each element of a Conv weight [M, C/G, k…] reads: group (o / (M/G))·(C/G) + column.</summary>
    private readonly record struct InputLayout(int Outputs, int Columns, int Group, int Kernel)
    {
        public int Channels => Columns * Group;

        public static InputLayout Of(Proto.TensorProto weight, long group)
        {
            int kernel = 1;
            for (int d = 2; d < weight.Dims.Count; d++) kernel *= (int)weight.Dims[d];
            return new InputLayout((int)weight.Dims[0], (int)weight.Dims[1], (int)group, kernel);
        }

        public int ChannelOf(int element)
        {
            int o = element / (Columns * Kernel), column = element % (Columns * Kernel) / Kernel;
            return o / (Outputs / Group) * Columns + column;
        }
    }
}
