using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite;

/// <summary>A weight input of a quantized node: quantized per channel along Axis (or per tensor), with its bias if any.</summary>
public sealed record WeightUse(NodeProto Node, int InputIndex, int Axis, int? BiasIndex);

/// <summary>
/// What the rewrite will do, decided before calibration so calibration knows which tensors to observe: which nodes are
/// quantized, which activation tensors get a QuantizeLinear/DequantizeLinear pair, which tensors share parameters
/// (Concat; pass-through ops reuse their input's), fixed ranges (Softmax, Sigmoid), weights, and Relus folded into
/// their producer's output range.
/// </summary>
public sealed class QuantizationPlan
{
    private readonly Dictionary<string, string> _parent = new(StringComparer.Ordinal);

    public List<NodeProto> QuantizedNodes { get; } = [];
    /// <summary>Activation tensors that get a Q/DQ pair, in graph order.</summary>
    public List<string> QdqTensors { get; } = [];
    /// <summary>Tensors whose calibration statistics decide their group's parameters.</summary>
    public HashSet<string> StatsTensors { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, (double Lo, double Hi)> FixedRanges { get; } = new(StringComparer.Ordinal);
    public List<WeightUse> Weights { get; } = [];
    /// <summary>
    /// Constant inputs of quantized elementwise ops (an Add's bias, a Mul's scale): quantized as initializers behind a
    /// DequantizeLinear, so that ONNX Runtime fuses the op (QLinearAdd/QLinearMul need every input dequantized).
    /// </summary>
    public List<(NodeProto Node, int Index)> ConstantInputs { get; } = [];
    /// <summary>
    /// Outputs of Mul by a positive scalar constant k: y = k·x is x's codes read with scale k·s_x, so the Mul and y's
    /// requantization vanish (exact: round(k·s(q − z)/(k·s)) + z = q). Applied when y's group is y alone.
    /// </summary>
    public Dictionary<string, (NodeProto Mul, string Source, double Factor)> ScaledCopies { get; } = new(StringComparer.Ordinal);

    /// <summary>Whether y = k·x is read from x's codes (<see cref="ScaledCopies"/>): y shares its parameters with nothing else and x is quantized.</summary>
    public bool IsScaledCopy(string tensor) =>
        ScaledCopies.TryGetValue(tensor, out var s) && IsQdq(s.Source)
        && QdqTensors.Count(t => Root(t) == Root(tensor)) == 1;
    public List<NodeProto> FoldedActivations { get; } = [];
    /// <summary>Tensors whose quantizer must clip at 0 (folded Relu outputs): their group's zero point is pinned to the range's bottom.</summary>
    public HashSet<string> ClipAtZero { get; } = new(StringComparer.Ordinal);
    /// <summary>Upper bounds of folded Clip nodes: the group's range may not extend above them.</summary>
    public Dictionary<string, float> UpperLimits { get; } = new(StringComparer.Ordinal);
    /// <summary>Op types left in float because no handler knows them or they were excluded, with counts.</summary>
    public SortedDictionary<string, int> FloatOps { get; } = new(StringComparer.Ordinal);

    /// <summary>Quantizable nodes kept in float because they build or apply an attention mask (<see cref="Onnx.MaskPaths"/>).</summary>
    public int MaskNodes { get; set; }

    /// <summary>Add/Mul nodes kept in float because no quantized node reads their output.</summary>
    public int FloatJoins { get; set; }

    /// <summary>Recognized multi-node functions kept in float as wholes (<see cref="Onnx.FloatUnits"/>), by kind, with counts.</summary>
    public SortedDictionary<string, int> FloatUnits { get; } = new(StringComparer.Ordinal);

    public bool IsQdq(string tensor) => QdqTensors.Contains(tensor);

    public void AddQdq(string tensor)
    {
        if (!QdqTensors.Contains(tensor)) QdqTensors.Add(tensor);
        _parent.TryAdd(tensor, tensor);
    }

    /// <summary>The tensor whose parameters this one uses.</summary>
    public string Root(string tensor)
    {
        if (!_parent.TryGetValue(tensor, out var p)) return tensor;
        if (p == tensor) return tensor;
        string root = Root(p);
        _parent[tensor] = root;
        return root;
    }

    public void Union(string a, string b)
    {
        _parent.TryAdd(a, a);
        _parent.TryAdd(b, b);
        string ra = Root(a), rb = Root(b);
        if (ra != rb) _parent[rb] = ra;
    }

    /// <summary>Tensors grouped by the root that owns their parameters.</summary>
    public Dictionary<string, List<string>> Groups() =>
        QdqTensors.GroupBy(Root).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);

    /// <summary>The tensors of a group whose statistics count.</summary>
    public IEnumerable<string> StatsOf(string root) =>
        _parent.Keys.Where(t => Root(t) == root && StatsTensors.Contains(t));
}
