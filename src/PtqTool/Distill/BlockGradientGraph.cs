using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Distill;

/// <summary>
/// A block's reconstruction objective as one ONNX model: inputs are the block's inputs x̃ (<see cref="Inputs"/>: the
/// tensor the block continues and any side input it reads, such as an attention mask), the target y (the FP32 model's
/// block output), each learned weight W̃ₗ and, where <see cref="Positions"/> is set, a 0/1 weight per sequence position
/// ([N, S, 1…]); outputs are the loss Σ m·(f(x̃; W̃) − y)² summed over the batch (m = 1 without positions) and its
/// gradient with respect to every W̃ₗ, in <see cref="WeightGradients"/> order.
/// </summary>
public sealed record BlockGraph(ModelProto Model, IReadOnlyList<string> Inputs, string Target, string Loss, IReadOnlyList<string> Weights, IReadOnlyList<string> WeightGradients,
    IReadOnlyList<int[]> InputShapes, int[] OutputShape, string? Positions = null)
{
    /// <summary>The first input: the tensor the block continues.</summary>
    public string Input => Inputs[0];
    public int[] InputShape => InputShapes[0];
}

/// <summary>
/// Builds <see cref="BlockGraph"/>s: the block's nodes copied from the float model with the learned weights turned into
/// graph inputs, the squared error against the target, and reverse-mode differentiation with respect to the weights
/// (<see cref="ReverseMode"/>, the same backward rules as the ZeroQ graph), so ONNX Runtime computes loss and weight
/// gradients of a whole block (Relus, skip Adds, pools and all) in one run.
/// </summary>
public static class BlockGradientGraph
{
    public const string TargetName = "ptq_block_target", LossName = "ptq_block_loss", PositionsName = "ptq_block_positions";

    /// <summary>One input x of the given full shape, no position weights.</summary>
    public static BlockGraph Build(ModelProto model, IReadOnlyList<NodeProto> nodes, string input, string output, IReadOnlyList<string> weights, int[] inputShape) =>
        Build(model, nodes, [input], output, weights, [inputShape], positions: false);

    /// <param name="model">The float model the block's nodes and constants come from.</param>
    /// <param name="nodes">The block's nodes in topological order; they read only <paramref name="input"/> and constants from outside.</param>
    /// <param name="inputs">The tensors the block reads from before it (float), the one it continues first.</param>
    /// <param name="output">The block's output tensor (its loss is taken there).</param>
    /// <param name="weights">The weights learned, initializers of <paramref name="model"/> read by block nodes.</param>
    /// <param name="inputShapes">Each input's full shape, batch included: the graph is built for them.</param>
    /// <param name="positions">Whether the loss is weighted per sequence position: the output must be [N, S, …].</param>
    public static BlockGraph Build(ModelProto model, IReadOnlyList<NodeProto> nodes, IReadOnlyList<string> inputs, string output, IReadOnlyList<string> weights,
        IReadOnlyList<int[]> inputShapes, bool positions)
    {
        var source = new OnnxGraph(model);
        var graph = new OnnxGraph(new ModelProto
        {
            IrVersion = Math.Max(model.IrVersion, 8),
            ProducerName = "ptq-brecq",
            Graph = new GraphProto { Name = "block_gradient" },
        });
        graph.Model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Math.Max(source.OpsetVersion(), 13) });
        var learned = new HashSet<string>(weights, StringComparer.Ordinal);
        var produced = new HashSet<string>(nodes.SelectMany(n => n.Output), StringComparer.Ordinal);
        var fed = new HashSet<string>(inputs, StringComparer.Ordinal);
        for (int i = 0; i < inputs.Count; i++) AddInput(graph, inputs[i], inputShapes[i]);
        foreach (var w in weights)
            AddInput(graph, w, TensorData.Shape(source.Initializer(w) ?? throw new PtqException($"block weight '{w}' is not an initializer")));
        var copied = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in nodes)
            foreach (var i in n.Input)
            {
                if (i.Length == 0 || fed.Contains(i) || learned.Contains(i) || produced.Contains(i) || !copied.Add(i)) continue;
                var value = source.ConstantValue(i) ?? throw new PtqException($"block node '{n.Name}' reads '{i}', which is neither a block input nor a constant");
                var t = value.Clone();
                t.Name = i;
                graph.AddInitializer(t);
            }
        var copies = nodes.Select(n => n.Clone()).ToList();
        foreach (var n in copies) graph.AddNode(n);

        var integer = IntegerTensors(graph, copies);
        var feedShapes = new Dictionary<string, int[]>(StringComparer.Ordinal);
        for (int i = 0; i < inputs.Count; i++) feedShapes[inputs[i]] = inputShapes[i];
        foreach (var w in weights) feedShapes[w] = TensorData.Shape(source.Initializer(w)!);
        var shapes = ForwardShapes.Probe(graph.Model, copies, feedShapes, integer, "block forward");
        foreach (var t in graph.Graph.Initializer) shapes[t.Name] = TensorData.Shape(t);
        int[] outputShape = shapes.TryGetValue(output, out var os) ? os : throw new PtqException($"block output '{output}' is not produced by the block");
        AddInput(graph, TargetName, outputShape);
        var context = new GradientContext(graph, shapes);
        string difference = context.Op("Sub", [output, TargetName]);
        string? positionWeights = null;
        if (positions)
        {
            if (outputShape.Length < 2) throw new PtqException($"block output '{output}' has no sequence axis to weight positions on");
            int[] weightShape = [outputShape[0], outputShape[1], .. Enumerable.Repeat(1, outputShape.Length - 2)];
            AddInput(graph, PositionsName, weightShape);
            positionWeights = PositionsName;
            difference = context.Op("Mul", [difference, PositionsName]);   // m is 0/1: m·d² = (m·d)², and its gradient 2·m·d
        }
        string loss = context.Op("ReduceSum", [context.Op("Mul", [difference, difference])], NodeAttributes.Int("keepdims", 0));
        graph.AddNode(NodeAttributes.Node("Identity", graph.UniqueName("loss_out"), [loss], [LossName]));
        graph.AddOutput(LossName);

        var gradients = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        ReverseMode.Accumulate(gradients, output, context.Op("Mul", [difference, context.Scalar(2)]));
        var dependent = ReverseMode.Dependents(copies, weights);
        ReverseMode.Run(copies, gradients, context, t => dependent.Contains(t) && !integer.Contains(t));
        var names = new List<string>();
        foreach (var w in weights)
        {
            string name = graph.UniqueName("ptq_gradient_" + w);
            string g = gradients.TryGetValue(w, out var parts)
                ? ReverseMode.Sum(context, parts)
                : context.Floats(new float[shapes[w].Aggregate(1, (a, b) => a * b)], shapes[w]);
            graph.AddNode(NodeAttributes.Node("Identity", graph.UniqueName("gradient_out"), [g], [name]));
            graph.AddOutput(name);
            names.Add(name);
        }
        graph.SortNodes();
        return new BlockGraph(graph.Model, inputs, TargetName, LossName, weights, names, inputShapes, outputShape, positionWeights);
    }

    private static void AddInput(OnnxGraph graph, string name, int[] shape)
    {
        var dims = new TensorShapeProto();
        foreach (int d in shape) dims.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        graph.Graph.Input.Add(new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementType.Float, Shape = dims } },
        });
    }

    /// <summary>
    /// The tensors of the block that hold integers or booleans (shape arithmetic an exporter left in the graph: Shape,
    /// Cast to an integer, comparisons, and what is computed from their first input onwards): no gradient flows there.
    /// </summary>
    private static HashSet<string> IntegerTensors(OnnxGraph graph, List<NodeProto> forward)
    {
        var integer = new HashSet<string>(graph.Graph.Initializer.Where(t => t.DataType != ElementType.Float).Select(t => t.Name), StringComparer.Ordinal);
        foreach (var n in forward)
        {
            bool isInteger = n.OpType switch
            {
                "Shape" or "Size" or "NonZero" or "ArgMax" or "ArgMin" or "Equal" or "Less" or "Greater" or "LessOrEqual" or "GreaterOrEqual" or "Not" or "And" or "Or" => true,
                "Cast" => NodeAttributes.GetInt(n, "to", ElementType.Float) != ElementType.Float,
                "Constant" => n.Attribute.FirstOrDefault(a => a.Name == "value")?.T is { } t && t.DataType != ElementType.Float,
                _ => n.Input.FirstOrDefault(i => i.Length > 0) is { } first && integer.Contains(first),
            };
            if (isInteger) foreach (var o in n.Output) integer.Add(o);
        }
        return integer;
    }
}
