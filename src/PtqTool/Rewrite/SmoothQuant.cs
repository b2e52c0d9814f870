using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite;

/// <summary>One LayerNorm whose output channels are smoothed into the MatMul weights that read it.</summary>
/// <param name="Tensor">The LayerNorm's output (the MatMuls' activation input).</param>
/// <param name="Gamma">The constant γ (Mul) and β (Add) initializers that end it, length K.</param>
/// <param name="Weights">The [K, N] weight initializers of the MatMuls reading <paramref name="Tensor"/>.</param>
/// <param name="Others">The other nodes reading it (a post-LN transformer's residual Add): they get it back unsmoothed.</param>
public sealed record SmoothingSite(string Tensor, string Gamma, string Beta, IReadOnlyList<string> Weights, IReadOnlyList<NodeProto> Others);

/// <summary>
/// SmoothQuant (Xiao et al. 2023, "SmoothQuant: Accurate and Efficient Post-Training Quantization for Large Language
/// Models"): for Y = X·W where a few channels j of X carry outliers, X_j / s_j and W's row j · s_j give the same Y and
/// move the outliers into the weights, which are quantized per output channel and bear them better; with
/// s_j = max|X_j|^α / max|W_j|^(1−α). The division is folded into the LayerNorm's affine γ and β that produce X, so
/// the float function is unchanged. Readers other than those MatMuls (the residual Add of a post-LN encoder such as
/// BERT) read X_j again through one added Mul by s. Only LayerNorms read by at least one such MatMul qualify, with γ,
/// β and the weights used nowhere else.
/// </summary>
public static class SmoothQuant
{
    public static List<SmoothingSite> Sites(OnnxGraph graph)
    {
        var sites = new List<SmoothingSite>();
        foreach (var unit in FloatUnits.Find(graph).Where(u => u.Kind == "LayerNorm"))
        {
            var beta = graph.Producer(unit.Output);
            if (beta is not { OpType: "Add" } || graph.IsGraphOutput(unit.Output)) continue;
            string? b = beta.Input.FirstOrDefault(i => graph.Initializer(i) is { Dims.Count: 1 });
            var scale = beta.Input.Select(graph.Producer).FirstOrDefault(p => p is { OpType: "Mul" } && unit.Nodes.Contains(p));
            string? g = scale?.Input.FirstOrDefault(i => graph.Initializer(i) is { Dims.Count: 1 });
            if (b is null || g is null) continue;
            long k = graph.Initializer(g)!.Dims[0];
            if (graph.Initializer(b)!.Dims[0] != k || Readers(graph, g) != 1 || Readers(graph, b) != 1) continue;
            var readers = graph.Consumers(unit.Output);
            bool Smoothable(NodeProto r) => r.OpType == "MatMul" && r.Input[0] == unit.Output && r.Input[1] != unit.Output
                && graph.Initializer(r.Input[1]) is { Dims.Count: 2 } w && w.Dims[0] == k && w.DataType == ElementType.Float && Readers(graph, r.Input[1]) == 1;
            var matmuls = readers.Where(Smoothable).ToList();
            if (matmuls.Count == 0) continue;
            sites.Add(new SmoothingSite(unit.Output, g, b, matmuls.Select(m => m.Input[1]).ToList(), readers.Where(r => !Smoothable(r)).ToList()));
        }
        return sites;
    }

    /// <summary>The per-channel factors s_j from the activation's channel maxima and the weights' row maxima.</summary>
    public static float[] Factors(ReadOnlySpan<float> activationMax, IReadOnlyList<float[]> weightRowMax, double alpha)
    {
        var s = new float[activationMax.Length];
        for (int j = 0; j < s.Length; j++)
        {
            double a = activationMax[j], w = weightRowMax.Max(r => r[j]);
            double f = a > 0 && w > 0 ? Math.Pow(a, alpha) / Math.Pow(w, 1 - alpha) : 1;
            s[j] = (float)Math.Clamp(f, 1e-4, 1e4);
        }
        return s;
    }

    /// <summary>Row maxima max_n |W[j, n]| of a [K, N] weight.</summary>
    public static float[] RowMax(TensorProto weight)
    {
        var w = TensorData.ToFloats(weight);
        int k = (int)weight.Dims[0], n = (int)weight.Dims[1];
        var max = new float[k];
        for (int j = 0; j < k; j++)
            for (int i = 0; i < n; i++) max[j] = Math.Max(max[j], Math.Abs(w[j * n + i]));
        return max;
    }

    /// <summary>Divides γ and β by s, multiplies each weight's rows by s, and gives the other readers X·s (in place).</summary>
    public static void Apply(OnnxGraph graph, SmoothingSite site, ReadOnlySpan<float> s)
    {
        Scale(graph, site.Gamma, s, divide: true, rowLength: 1);
        Scale(graph, site.Beta, s, divide: true, rowLength: 1);
        foreach (var w in site.Weights) Scale(graph, w, s, divide: false, rowLength: (int)graph.Initializer(w)!.Dims[1]);
        if (site.Others.Count == 0) return;
        string factor = site.Tensor + "_smoothquant_s", restored = site.Tensor + "_unsmoothed";
        foreach (var reader in site.Others)
            for (int i = 0; i < reader.Input.Count; i++)
                if (reader.Input[i] == site.Tensor) reader.Input[i] = restored;
        // Right after the LayerNorm, so the node list stays in topological order.
        var producer = graph.Producer(site.Tensor)!;
        graph.Graph.Node.Insert(graph.Graph.Node.IndexOf(producer) + 1, NodeAttributes.Node("Mul", site.Tensor + "_unsmooth", [site.Tensor, factor], [restored]));
        graph.AddInitializer(TensorData.FromFloats(factor, [s.Length], s));
    }

    private static void Scale(OnnxGraph graph, string name, ReadOnlySpan<float> s, bool divide, int rowLength)
    {
        var t = graph.Initializer(name)!;
        var v = TensorData.ToFloats(t, graph.BaseDirectory);
        for (int i = 0; i < v.Length; i++) v[i] = divide ? v[i] / s[i / rowLength] : v[i] * s[i / rowLength];
        graph.ReplaceInitializer(TensorData.FromFloats(name, TensorData.Shape(t), v));
    }

    private static int Readers(OnnxGraph graph, string tensor) => graph.Graph.Node.Sum(n => n.Input.Count(i => i == tensor));
}
