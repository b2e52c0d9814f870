using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite.Handlers;

/// <summary>What handlers call to add to the plan; it enforces the rules every handler shares.</summary>
public sealed class PlanBuilder
{
    private readonly Dictionary<string, int> _types;
    private readonly HashSet<NodeProto> _quantized;
    /// <summary>Nodes of recognized LayerNorm/GELU units (<see cref="FloatUnits"/>): float inside, quantized only at their edges.</summary>
    private readonly HashSet<NodeProto> _inUnits = [];
    /// <summary>Nodes that build or apply an attention mask (<see cref="MaskPaths"/>): kept in float, like excluded ones.</summary>
    private readonly HashSet<NodeProto> _maskPaths;

    public OnnxGraph Graph { get; }
    public QuantizationOptions Options { get; }
    public QuantizationPlan Plan { get; } = new();

    private PlanBuilder(OnnxGraph graph, QuantizationOptions options)
    {
        Graph = graph;
        Options = options;
        _types = TypeInference.Infer(graph);
        foreach (var unit in FloatUnits.Find(graph))
        {
            Plan.FloatUnits[unit.Kind] = Plan.FloatUnits.GetValueOrDefault(unit.Kind) + 1;
            _inUnits.UnionWith(unit.Nodes);
        }
        _maskPaths = MaskPaths.Find(graph);
        _quantized = graph.Graph.Node.Where(n => OpHandlers.For(n.OpType) is not null && !KeptFloat(n) && !_inUnits.Contains(n)).ToHashSet();
        Plan.MaskNodes = _maskPaths.Count(n => OpHandlers.For(n.OpType) is not null);
        // Consumers before producers: an Add or Mul that no quantized node reads stays float (a QLinearAdd would only
        // requantize what a float op reads next: the residual stream into a LayerNorm, with its outlier channels).
        foreach (var node in graph.TopologicalOrder().AsEnumerable().Reverse())
            if (node.OpType is "Add" or "Mul" && _quantized.Contains(node) && !ReadQuantized(node.Output[0]))
            {
                _quantized.Remove(node);
                Plan.FloatJoins++;
            }
    }

    /// <summary>Plans the rewrite of a graph (BatchNormalization already folded).</summary>
    public static QuantizationPlan Build(OnnxGraph graph, QuantizationOptions options)
    {
        var builder = new PlanBuilder(graph, options);
        foreach (var node in graph.TopologicalOrder())
        {
            if (builder._quantized.Contains(node))
            {
                builder.Plan.QuantizedNodes.Add(node);
                OpHandlers.For(node.OpType)!.Plan(node, builder);
            }
            else if (node.OpType is not ("Constant" or "Identity") && !builder._inUnits.Contains(node)
                     && !(options.Int4WeightStorage && MatMulNBits.Eligible(graph, node)))
            {
                builder.Plan.FloatOps[node.OpType] = builder.Plan.FloatOps.GetValueOrDefault(node.OpType) + 1;
            }
        }
        return builder.Plan;
    }

    public static bool IsExcluded(NodeProto node, QuantizationOptions options) =>
        options.Exclude.Contains(node.Name) || options.Exclude.Contains(node.OpType);

    public bool IsQuantized(NodeProto node) => _quantized.Contains(node);

    private Dictionary<string, int>? _ranks;

    /// <summary>The tensor's rank where <see cref="RankInference"/> can tell it, else null.</summary>
    public int? Rank(string tensor) => (_ranks ??= RankInference.Infer(Graph)).TryGetValue(tensor, out int r) ? r : null;

    /// <summary>Whether a quantized node reads <paramref name="tensor"/> (graph outputs are read in float).</summary>
    public bool ReadQuantized(string tensor) => !Graph.IsGraphOutput(tensor) && Graph.Consumers(tensor).Any(_quantized.Contains);

    /// <summary>Excluded by the user, or on an attention-mask path: the node and its output stay float.</summary>
    private bool KeptFloat(NodeProto node) => IsExcluded(node, Options) || _maskPaths.Contains(node)
        || (Options.Int4WeightStorage && MatMulNBits.Eligible(Graph, node));

    /// <summary>Gives an activation input a Q/DQ pair (with its own statistics unless its producer already planned it).</summary>
    /// <returns>Whether the input is a quantized activation.</returns>
    public bool QuantizeInput(NodeProto node, int index)
    {
        if (index >= node.Input.Count) return false;
        string t = node.Input[index];
        if (!IsFloatActivation(t)) return false;
        // An explicitly excluded producer stays float through its output: a Q right after it would let ONNX Runtime
        // fuse it into an integer kernel anyway. (Ops without a handler do get DQ → op → Q, so neighbours still fuse.)
        if (Graph.Producer(t) is { } producer && KeptFloat(producer)) return false;
        if (!Plan.IsQdq(t))
        {
            Plan.AddQdq(t);
            Plan.StatsTensors.Add(t);
        }
        return true;
    }

    /// <returns>Whether the output is a quantized activation (graph outputs stay float).</returns>
    public bool QuantizeOutput(NodeProto node, int index, bool ownStats = true)
    {
        string t = node.Output[index];
        if (!IsFloatActivation(t)) return false;
        Plan.AddQdq(t);
        if (ownStats) Plan.StatsTensors.Add(t);
        return true;
    }

    public void Weight(WeightUse use) => Plan.Weights.Add(use);

    /// <summary>Quantizes a float constant input of the node as an initializer (see <see cref="QuantizationPlan.ConstantInputs"/>).</summary>
    /// <returns>Whether the input is such a constant.</returns>
    public bool QuantizeConstantInput(NodeProto node, int index)
    {
        if (index >= node.Input.Count || node.Input[index].Length == 0) return false;
        var c = Graph.ConstantValue(node.Input[index]);
        if (c is null || c.DataType != ElementType.Float) return false;
        Plan.ConstantInputs.Add((node, index));
        return true;
    }

    /// <summary>Removes the Relu; its producer's output takes the Relu's output name and statistics.</summary>
    public void FoldActivation(NodeProto relu)
    {
        Plan.FoldedActivations.Add(relu);
        Plan.QdqTensors.Remove(relu.Input[0]);
        Plan.StatsTensors.Remove(relu.Input[0]);
        Plan.AddQdq(relu.Output[0]);
        Plan.StatsTensors.Add(relu.Output[0]);
        Plan.ClipAtZero.Add(relu.Output[0]);
    }

    private bool IsFloatActivation(string t) =>
        t.Length > 0 && Graph.ConstantValue(t) is null && !Graph.IsGraphOutput(t)
        && _types.TryGetValue(t, out int type) && type == ElementType.Float;
}
