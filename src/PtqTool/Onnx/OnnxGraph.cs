using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>
/// Queries and edits over a model's main graph: producer and consumers of a tensor, topological order,
/// initializers, node insertion and removal, tensor renaming, opset lookup. Indexes are rebuilt lazily after edits.
/// </summary>
public sealed class OnnxGraph
{
    private Dictionary<string, NodeProto>? _producers;
    private Dictionary<string, List<NodeProto>>? _consumers;
    private Dictionary<string, TensorProto>? _initializers;
    private readonly HashSet<string> _usedNames = new(StringComparer.Ordinal);
    private int _nameCounter;

    public ModelProto Model { get; }
    public GraphProto Graph => Model.Graph;
    /// <summary>Directory that external data paths are relative to.</summary>
    public string BaseDirectory { get; }

    public OnnxGraph(ModelProto model, string baseDirectory = ".")
    {
        Model = model;
        BaseDirectory = baseDirectory;
    }

    public static OnnxGraph Load(string path) =>
        new(OnnxModelFile.Load(path), Path.GetDirectoryName(Path.GetFullPath(path))!);

    public long OpsetVersion(string domain = "")
    {
        foreach (var o in Model.OpsetImport)
            if ((o.Domain ?? "") == domain || (domain == "" && o.Domain == "ai.onnx"))
                return o.Version;
        return 0;
    }

    public NodeProto? Producer(string tensor)
    {
        _producers ??= BuildProducers();
        return _producers.GetValueOrDefault(tensor);
    }

    public IReadOnlyList<NodeProto> Consumers(string tensor)
    {
        _consumers ??= BuildConsumers();
        return _consumers.TryGetValue(tensor, out var list) ? list : [];
    }

    public bool IsGraphOutput(string tensor) => Graph.Output.Any(o => o.Name == tensor);

    public bool IsGraphInput(string tensor) => Graph.Input.Any(i => i.Name == tensor) && Initializer(tensor) is null;

    /// <summary>Real inputs: graph inputs that are not also initializers (IR &lt; 4 lists initializers as inputs).</summary>
    public IEnumerable<ValueInfoProto> DataInputs() => Graph.Input.Where(i => Initializer(i.Name) is null);

    /// <summary>
    /// Declares a graph input's shape as exactly <paramref name="shape"/> (every dimension fixed), e.g. to run a model
    /// exported with batch 1 at another batch size in one piece.
    /// </summary>
    public void FixInputShape(string input, int[] shape)
    {
        var info = Graph.Input.FirstOrDefault(i => i.Name == input) ?? throw new PtqException($"graph has no input '{input}'");
        info.Type ??= new TypeProto();
        info.Type.TensorType ??= new TypeProto.Types.Tensor { ElemType = ElementType.Float };
        var dims = new TensorShapeProto();
        foreach (int d in shape) dims.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        info.Type.TensorType.Shape = dims;
    }

    public TensorProto? Initializer(string name)
    {
        _initializers ??= Graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        return _initializers.GetValueOrDefault(name);
    }

    public float[] InitializerFloats(string name) =>
        TensorData.ToFloats(Initializer(name) ?? throw new KeyNotFoundException($"no initializer '{name}'"), BaseDirectory);

    /// <summary>
    /// The value of a constant tensor: an initializer, a Constant node's value, or either seen through Identity nodes
    /// (exporters write one Identity per duplicated initializer). Null when the tensor is not constant.
    /// </summary>
    public TensorProto? ConstantValue(string name)
    {
        for (int depth = 0; depth < 64; depth++)
        {
            var init = Initializer(name);
            if (init is not null) return init;
            var p = Producer(name);
            if (p is { OpType: "Constant" }) return p.Attribute.FirstOrDefault(a => a.Name == "value")?.T;
            if (p is not { OpType: "Identity" }) return null;
            name = p.Input[0];
        }
        return null;
    }

    /// <summary>Nodes in an order where every node comes after the producers of its inputs. Throws on a cycle.</summary>
    public List<NodeProto> TopologicalOrder()
    {
        var available = new HashSet<string>(StringComparer.Ordinal);
        foreach (var i in Graph.Input) available.Add(i.Name);
        foreach (var t in Graph.Initializer) available.Add(t.Name);
        available.Add("");
        var pending = new List<NodeProto>(Graph.Node);
        var order = new List<NodeProto>(pending.Count);
        while (pending.Count > 0)
        {
            int before = order.Count;
            var still = new List<NodeProto>();
            foreach (var n in pending)
            {
                if (n.Input.All(available.Contains))
                {
                    order.Add(n);
                    foreach (var o in n.Output) available.Add(o);
                }
                else still.Add(n);
            }
            if (order.Count == before)
                throw new PtqException($"graph '{Graph.Name}': cycle or missing input at node '{still[0].Name}' ({still[0].OpType})");
            pending = still;
        }
        return order;
    }

    /// <summary>Re-orders the graph's nodes topologically (after insertions that appended nodes at the end).</summary>
    public void SortNodes()
    {
        var order = TopologicalOrder();
        Graph.Node.Clear();
        Graph.Node.AddRange(order);
        Invalidate();
    }

    public void AddNode(NodeProto node)
    {
        Graph.Node.Add(node);
        Invalidate();
    }

    public void RemoveNode(NodeProto node)
    {
        Graph.Node.Remove(node);
        Invalidate();
    }

    public void AddInitializer(TensorProto tensor)
    {
        Graph.Initializer.Add(tensor);
        Invalidate();
    }

    /// <summary>Puts <paramref name="tensor"/> in the place of the initializer of the same name (same position in the list).</summary>
    public void ReplaceInitializer(TensorProto tensor)
    {
        var old = Initializer(tensor.Name) ?? throw new PtqException($"'{tensor.Name}' is not an initializer");
        Graph.Initializer[Graph.Initializer.IndexOf(old)] = tensor;
        Invalidate();
    }

    public void RemoveInitializer(string name)
    {
        var t = Initializer(name);
        if (t is null) return;
        Graph.Initializer.Remove(t);
        var input = Graph.Input.FirstOrDefault(i => i.Name == name);
        if (input is not null) Graph.Input.Remove(input);
        Invalidate();
    }

    /// <summary>Renames a tensor everywhere: node inputs and outputs, graph inputs/outputs, value_info and initializers.</summary>
    public void RenameTensor(string from, string to)
    {
        foreach (var n in Graph.Node)
        {
            for (int i = 0; i < n.Input.Count; i++) if (n.Input[i] == from) n.Input[i] = to;
            for (int i = 0; i < n.Output.Count; i++) if (n.Output[i] == from) n.Output[i] = to;
        }
        foreach (var v in Graph.Input.Concat(Graph.Output).Concat(Graph.ValueInfo))
            if (v.Name == from) v.Name = to;
        foreach (var t in Graph.Initializer)
            if (t.Name == from) t.Name = to;
        Invalidate();
    }

    /// <summary>Points every consumer of <paramref name="from"/> (except <paramref name="except"/>) at <paramref name="to"/>.</summary>
    public void RedirectConsumers(string from, string to, NodeProto? except = null)
    {
        foreach (var n in Graph.Node)
        {
            if (ReferenceEquals(n, except)) continue;
            for (int i = 0; i < n.Input.Count; i++) if (n.Input[i] == from) n.Input[i] = to;
        }
        foreach (var o in Graph.Output) if (o.Name == from) o.Name = to;
        Invalidate();
    }

    /// <summary>Adds a graph output for an existing tensor (no-op when it already is one).</summary>
    public void AddOutput(string tensor, int elementType = ElementType.Float)
    {
        if (IsGraphOutput(tensor)) return;
        var vi = new ValueInfoProto { Name = tensor, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = elementType } } };
        Graph.Output.Add(vi);
    }

    /// <summary>The element type recorded for a tensor in inputs, outputs, value_info or initializers; null when unknown.</summary>
    public int? ElementTypeOf(string tensor)
    {
        var init = Initializer(tensor);
        if (init is not null) return init.DataType;
        foreach (var v in Graph.Input.Concat(Graph.Output).Concat(Graph.ValueInfo))
            if (v.Name == tensor && v.Type?.TensorType is { } tt) return tt.ElemType;
        return null;
    }

    /// <summary>A tensor or node name not yet used in the graph, built from a readable prefix.</summary>
    public string UniqueName(string prefix)
    {
        if (_usedNames.Count == 0)
        {
            foreach (var n in Graph.Node) { _usedNames.Add(n.Name); foreach (var o in n.Output) _usedNames.Add(o); foreach (var i in n.Input) _usedNames.Add(i); }
            foreach (var t in Graph.Initializer) _usedNames.Add(t.Name);
            foreach (var v in Graph.Input.Concat(Graph.Output)) _usedNames.Add(v.Name);
        }
        string name = prefix;
        while (!_usedNames.Add(name)) name = $"{prefix}_{++_nameCounter}";
        return name;
    }

    private void Invalidate()
    {
        _producers = null;
        _consumers = null;
        _initializers = null;
    }

    private Dictionary<string, NodeProto> BuildProducers()
    {
        var d = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var n in Graph.Node) foreach (var o in n.Output) if (o.Length > 0) d[o] = n;
        return d;
    }

    private Dictionary<string, List<NodeProto>> BuildConsumers()
    {
        var d = new Dictionary<string, List<NodeProto>>(StringComparer.Ordinal);
        foreach (var n in Graph.Node)
            foreach (var i in n.Input.Distinct())
            {
                if (i.Length == 0) continue;
                if (!d.TryGetValue(i, out var list)) d[i] = list = [];
                list.Add(n);
            }
        return d;
    }
}
