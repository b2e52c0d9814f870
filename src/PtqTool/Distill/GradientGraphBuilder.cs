using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Distill;

/// <summary>The ZeroQ objective as one ONNX model: input x → (scalar loss, dLoss/dx).</summary>
public sealed record ZeroQGraph(ModelProto Model, string Input, string Loss, string Gradient, int BatchNormLayers);

/// <summary>
/// Builds the ZeroQ gradient graph: the part of the model that computes every BatchNormalization's input, the BN
/// statistics loss L = Σᵢ ‖mean_c(aᵢ) − μᵢ‖² + ‖std_c(aᵢ) − σᵢ‖², and reverse-mode differentiation of L with respect to
/// the input emitted as standard ONNX ops (one backward rule per op), so ONNX Runtime evaluates loss and gradient in one run.
/// </summary>
public static class GradientGraphBuilder
{
    public const string LossName = "zeroq_loss";
    public const string GradientName = "zeroq_input_gradient";
    /// <summary>Added under the square root of the batch variance.</summary>
    public const float VarianceEpsilon = 1e-8f;

    /// <param name="inputShape">The full input shape (batch included) the graph will be run with.</param>
    public static ZeroQGraph Build(ModelProto model, int[] inputShape, string nameForErrors = "model")
    {
        var source = new OnnxGraph(model.Clone());
        var bns = source.Graph.Node.Where(n => n.OpType == "BatchNormalization").ToList();
        if (bns.Count == 0)
            throw new PtqException($"{nameForErrors}: ZeroQ needs BatchNormalization statistics and the model has none (BN folded into Conv at export cannot be recovered): use --synthetic gaussian or real calibration data");
        string input = source.DataInputs().Single().Name;
        // The graph is built for this one shape; fixing it also lets a model exported with batch 1 run the whole batch
        // at once (its batch statistics are the point), not in chunks of one.
        source.FixInputShape(input, inputShape);

        // The forward slice: every node some BN input depends on, and the BNs themselves (folded below).
        var needed = new HashSet<NodeProto>(bns);
        var stack = new Stack<string>(bns.SelectMany(b => b.Input).Where(i => i.Length > 0));
        while (stack.Count > 0)
        {
            var p = source.Producer(stack.Pop());
            if (p is null || !needed.Add(p)) continue;
            foreach (var i in p.Input) if (i.Length > 0) stack.Push(i);
        }
        var forward = source.TopologicalOrder().Where(needed.Contains).ToList();
        var shapes = ForwardShapes.Probe(source.Model, forward, new Dictionary<string, int[]> { [input] = inputShape });

        var graph = new OnnxGraph(new ModelProto
        {
            IrVersion = Math.Max(model.IrVersion, 8),
            ProducerName = "ptq-zeroq",
            Graph = new GraphProto { Name = "zeroq_gradient" },
        });
        long opset = Math.Max(source.OpsetVersion(), 16);
        graph.Model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        graph.Graph.Input.Add(source.Graph.Input.First(i => i.Name == input).Clone());
        var usedInputs = forward.SelectMany(n => n.Input).ToHashSet();
        foreach (var t in source.Graph.Initializer.Where(t => usedInputs.Contains(t.Name))) graph.Graph.Initializer.Add(t.Clone());
        var copyOf = forward.ToDictionary(n => n, n => n.Clone());
        foreach (var n in forward) graph.Graph.Node.Add(copyOf[n]);

        // A BN right after a Conv is folded into it (one op fewer forward, none backward) and its statistics are
        // matched at its output instead: for y = k·a + (β − k·μ) per channel, mean(a) − μ = (mean(y) − β)/k and
        // std(a) − σ = (std(y) − |k|·σ)/|k|, so the loss keeps its value with targets β, |k|·σ and weight 1/k².
        var folded = BatchNormFolding.FoldAll(graph, bn => graph.ConstantValue(bn.Input[1]) is { } gamma && TensorData.ToFloats(gamma).All(g => g != 0))
            .ToDictionary(f => f.BatchNorm);
        var targets = new List<StatisticsTarget>();
        foreach (var bn in bns)
        {
            float[] mu = TensorData.ToFloats(source.ConstantValue(bn.Input[3])!);
            float[] sigma = TensorData.ToFloats(source.ConstantValue(bn.Input[4])!).Select(v => MathF.Sqrt(Math.Max(v, 0))).ToArray();
            if (folded.TryGetValue(copyOf[bn], out var f))
            {
                float[] beta = TensorData.ToFloats(source.ConstantValue(bn.Input[2])!);
                targets.Add(new StatisticsTarget(bn.Output[0], beta, sigma.Select((v, c) => Math.Abs(f.Scale[c]) * v).ToArray(),
                    f.Scale.Select(k => 1f / (k * k)).ToArray()));
            }
            else
                targets.Add(new StatisticsTarget(bn.Input[0], mu, sigma, null));
        }
        // An unfolded BN is only in the slice when something downstream needs its output.
        var sliced = forward.Where(n => !folded.ContainsKey(copyOf[n])).ToList();
        foreach (var bn in bns.Where(b => !folded.ContainsKey(copyOf[b]) && !IsNeeded(b, sliced)))
        {
            graph.RemoveNode(copyOf[bn]);
            sliced.Remove(bn);
        }
        var copies = sliced.Select(n => copyOf[n]).ToList();
        foreach (var t in graph.Graph.Initializer) shapes[t.Name] = TensorData.Shape(t);
        var context = new GradientContext(graph, shapes);

        // Loss and its gradient at each matched tensor.
        var gradients = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var losses = new List<string>();
        foreach (var target in targets)
        {
            var (loss, gradientParts) = StatisticsLoss(target, context, opset);
            losses.Add(loss);
            foreach (var part in gradientParts) ReverseMode.Accumulate(gradients, target.Tensor, part);
        }
        string total = losses.Count == 1 ? losses[0] : context.Op("Sum", losses);
        graph.AddNode(NodeAttributes.Node("Identity", "zeroq_loss_out", [total], [LossName]));

        // Only tensors that depend on the input need gradients.
        var dependent = ReverseMode.Dependents(copies, [input]);
        ReverseMode.Run(copies, gradients, context, dependent.Contains);
        string gradInput = gradients.TryGetValue(input, out var inputParts) ? ReverseMode.Sum(context, inputParts) : context.Floats(new float[inputShape.Aggregate(1, (a, b) => a * b)], inputShape);
        graph.AddNode(NodeAttributes.Node("Identity", "zeroq_gradient_out", [gradInput], [GradientName]));
        graph.AddOutput(LossName);
        graph.AddOutput(GradientName);
        graph.SortNodes();
        return new ZeroQGraph(graph.Model, input, LossName, GradientName, bns.Count);
    }

    /// <summary>The statistics one tensor should have: per-channel mean and standard deviation, each squared error weighted.</summary>
    private sealed record StatisticsTarget(string Tensor, float[] Mean, float[] Sd, float[]? Weight);

    private static bool IsNeeded(NodeProto bn, List<NodeProto> forward) => forward.Any(n => n != bn && n.Input.Contains(bn.Output[0]));

    /// <summary>
    /// For a tensor a with M values per channel: m = mean(a), sd = √(max(mean(a²) − m², 0) + ε);
    /// L = Σ w(m − μ)² + w(sd − σ)², and ∂L/∂a = 2w(m − μ)/M + 2w(sd − σ)(a − m)/(M·sd), written as a·k₁ + k₂ with
    /// per-channel k₁ = 2w(sd − σ)/(M·sd) and k₂ = 2w(m − μ)/M − k₁·m. The gradient comes back as two parts, a·k₁ and
    /// the per-channel k₂, which the gradient Sum adds by broadcasting: one full-size op per matched tensor besides the
    /// two reductions.
    /// </summary>
    private static (string Loss, string[] GradientParts) StatisticsLoss(StatisticsTarget target, GradientContext c, long opset)
    {
        string a = target.Tensor;
        int[] shape = c.Shape(a);
        long[] axes = Enumerable.Range(0, shape.Length).Where(i => i != 1).Select(i => (long)i).ToArray();
        int channels = shape[1];
        long m = shape.Where((_, i) => i != 1).Aggregate(1L, (x, y) => x * y);
        int[] statShape = [1, channels, .. Enumerable.Repeat(1, shape.Length - 2)];
        string mean, meanSquare;
        if (shape.Length > 2)
        {
            // Per sample and channel first, then over the batch: ONNX Runtime's GlobalAveragePool is much faster than
            // a reduction over axes (0, 2, 3).
            mean = Reduce(c, "ReduceMean", c.Op("GlobalAveragePool", [a]), [0], opset);
            meanSquare = Reduce(c, "ReduceMean", c.Op("GlobalAveragePool", [c.Op("Mul", [a, a])]), [0], opset);
        }
        else
        {
            mean = Reduce(c, "ReduceMean", a, axes, opset);
            meanSquare = c.Op("Mul", [Reduce(c, "ReduceSumSquare", a, axes, opset), c.Scalar(1f / m)]);
        }
        string variance = c.Op("Max", [c.Op("Sub", [meanSquare, c.Op("Mul", [mean, mean])]), c.Scalar(0)]);
        string sd = c.Op("Sqrt", [c.Op("Add", [variance, c.Scalar(VarianceEpsilon)])]);
        string em = c.Op("Sub", [mean, c.Floats(target.Mean, statShape)]);
        string es = c.Op("Sub", [sd, c.Floats(target.Sd, statShape)]);
        string wem = target.Weight is null ? em : c.Op("Mul", [em, c.Floats(target.Weight, statShape)]);
        string wes = target.Weight is null ? es : c.Op("Mul", [es, c.Floats(target.Weight, statShape)]);
        string loss = c.Op("Add", [
            c.Op("ReduceSum", [c.Op("Mul", [em, wem])], NodeAttributes.Int("keepdims", 0)),
            c.Op("ReduceSum", [c.Op("Mul", [es, wes])], NodeAttributes.Int("keepdims", 0))]);
        string k1 = c.Op("Div", [c.Op("Mul", [wes, c.Scalar(2f / m)]), sd]);
        string k2 = c.Op("Sub", [c.Op("Mul", [wem, c.Scalar(2f / m)]), c.Op("Mul", [k1, mean])]);
        return (loss, [c.Op("Mul", [a, k1]), k2]);
    }

    private static string Reduce(GradientContext c, string op, string x, long[] axes, long opset) =>
        opset >= 18
            ? c.Op(op, [x, c.Longs(axes)], NodeAttributes.Int("keepdims", 1))
            : c.Op(op, [x], NodeAttributes.Ints("axes", axes), NodeAttributes.Int("keepdims", 1));
}
