using PtqTool.Evaluation;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;

namespace PtqTool.Pipeline;

/// <summary>
/// The QDQ simulation graph (activation scales as inputs, <see cref="ScaleInputs"/>) run from a cached checkpoint: a
/// single-tensor cut (<see cref="GraphCuts"/>) before which no scale being searched is read. Scale refinement searches
/// the groups in graph order, so while it searches the groups after a checkpoint, the tensor there is the same for every
/// trial: it is computed once per batch and only the rest of the graph is run. At most <see cref="MaxCheckpoints"/>
/// checkpoints are used, so at most one suffix session is held at a time and the cache is one activation per sample.
/// </summary>
public sealed class SuffixSimulation : IDisposable
{
    public const int MaxCheckpoints = 8;

    private readonly ModelProto _model;
    private readonly List<NodeProto> _order;
    private readonly List<GraphCuts.Cut> _checkpoints;
    private readonly bool[] _constant;
    private readonly Dictionary<string, int> _firstReader = new(StringComparer.Ordinal);
    private readonly string _output;
    private readonly IReadOnlyList<ModelFeed> _batches;
    private readonly RunnerOptions _runner;
    private int _at = -1;
    private OrtRunner _session;
    private List<FloatTensor>? _cached;

    /// <summary>Work done so far in full-model forward passes of every batch: a run from a checkpoint counts the share of the nodes it runs.</summary>
    public double Cost { get; private set; }
    /// <summary>The share of the graph's nodes a run from the current start computes.</summary>
    public double Share => (_order.Count - (_at < 0 ? 0 : _checkpoints[_at].After + 1)) / (double)_order.Count;
    public IReadOnlyList<GraphCuts.Cut> Checkpoints => _checkpoints;

    /// <param name="sim">The QDQ graph with its activation scales still initializers; its scales become inputs here.</param>
    public SuffixSimulation(OnnxGraph sim, IReadOnlyDictionary<string, ActivationScaleNames> names, string output, IReadOnlyList<ModelFeed> batches, RunnerOptions runner)
    {
        _order = sim.TopologicalOrder();
        _checkpoints = Choose(FloatCuts(sim, _order), _order.Count);
        _constant = ConstantNodes(sim, _order);
        ScaleInputs.Expose(sim, names);
        _model = sim.Model;
        _output = output;
        _batches = batches;
        _runner = runner;
        var scaleInputs = new HashSet<string>(names.Values.SelectMany(n => new[] { n.Scale, n.ClipMin, n.ClipMax }).OfType<string>(), StringComparer.Ordinal);
        // Nodes of constants and scales alone (bias requantization) run in every suffix: they are not where a scale is first read.
        for (int i = 0; i < _order.Count; i++)
            if (!_constant[i])
            foreach (var t in _order[i].Input)
                if (scaleInputs.Contains(t)) _firstReader.TryAdd(t, i);
        _session = Session(-1);
    }

    /// <summary>The latest checkpoint before the first node that reads any of these scale inputs (-1: the model's inputs).</summary>
    public int CheckpointBefore(IEnumerable<string> scaleInputs)
    {
        int first = scaleInputs.Select(s => _firstReader.GetValueOrDefault(s, _order.Count)).DefaultIfEmpty(_order.Count).Min();
        int best = -1;
        for (int c = 0; c < _checkpoints.Count; c++)
            if (_checkpoints[c].After < first) best = c;
        return best;
    }

    /// <summary>Runs from the model's inputs again (the scales before a checkpoint changed).</summary>
    public void Restart()
    {
        if (_at < 0) return;
        _session.Dispose();
        _cached = null;
        _at = -1;
        _session = Session(-1);
    }

    /// <summary>Moves the start to <paramref name="checkpoint"/> (not before the current one): the tensor there is computed under <paramref name="scales"/> and cached.</summary>
    public void AdvanceTo(int checkpoint, IReadOnlyList<(string Name, FloatTensor Value)> scales)
    {
        if (checkpoint <= _at) return;
        string tensor = _checkpoints[checkpoint].Tensor;
        var cached = new List<FloatTensor>(_batches.Count);
        for (int i = 0; i < _batches.Count; i++)
            cached.Add(_session.Run(Feed(i, scales), [tensor])[tensor]);
        Cost += Share;
        _session.Dispose();
        _cached = cached;
        _at = checkpoint;
        _session = Session(checkpoint);
    }

    /// <summary>The loss of the model's output under <paramref name="scales"/> against <paramref name="references"/>, one per batch.</summary>
    public double Loss(IReadOnlyList<(string Name, FloatTensor Value)> scales, IReadOnlyList<FloatTensor> references, OutputLossKind kind)
    {
        var loss = new OutputLoss(kind);
        for (int i = 0; i < _batches.Count; i++)
            loss.Add(references[i], _session.Run(Feed(i, scales), [_output])[_output]);
        Cost += Share;
        return loss.Value;
    }

    private ModelFeed Feed(int batch, IReadOnlyList<(string Name, FloatTensor Value)> scales)
    {
        var names = new List<string?>();
        var tensors = new List<FloatTensor>();
        if (_at < 0)
        {
            names.AddRange(_batches[batch].Names);
            tensors.AddRange(_batches[batch].Tensors);
        }
        else
        {
            names.Add(_checkpoints[_at].Tensor);
            tensors.Add(_cached![batch]);
        }
        var wanted = _session.InputNames;
        foreach (var (name, value) in scales)
            if (wanted.Contains(name))
            {
                names.Add(name);
                tensors.Add(value);
            }
        return new ModelFeed(names, tensors, sameBatch: false);
    }

    /// <summary>A session for the graph from <paramref name="checkpoint"/> on, whose outputs are the model's output and the tensors of the later checkpoints.</summary>
    private OrtRunner Session(int checkpoint)
    {
        var model = _model.Clone();
        var graph = model.Graph;
        int from = checkpoint < 0 ? 0 : _checkpoints[checkpoint].After + 1;
        if (checkpoint >= 0)
        {
            // Nodes of constants alone (weight DequantizeLinears) run wherever the order put them.
            var kept = _order.Where((n, i) => i >= from || _constant[i]).Select(n => n.Clone()).ToList();
            graph.Node.Clear();
            graph.Node.AddRange(kept);
            var read = new HashSet<string>(kept.SelectMany(n => n.Input), StringComparer.Ordinal);
            bool subgraphs = kept.Any(n => n.Attribute.Any(a => a.G is not null || a.Graphs.Count > 0));
            var inputs = graph.Input.Where(i => read.Contains(i.Name)).ToList();
            graph.Input.Clear();
            graph.Input.Add(new ValueInfoProto
            {
                Name = _checkpoints[checkpoint].Tensor,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementType.Float } },
            });
            graph.Input.AddRange(inputs);
            if (!subgraphs)
            {
                var initializers = graph.Initializer.Where(t => read.Contains(t.Name)).ToList();
                graph.Initializer.Clear();
                graph.Initializer.AddRange(initializers);
            }
        }
        foreach (var cut in _checkpoints.Where(c => c.After + 1 > from))
            if (!graph.Output.Any(o => o.Name == cut.Tensor))
                graph.Output.Add(new ValueInfoProto
                {
                    Name = cut.Tensor,
                    Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementType.Float } },
                });
        return OrtRunner.FromModel(model, _runner, checkpoint < 0 ? "scale-refinement graph" : $"scale-refinement graph from '{_checkpoints[checkpoint].Tensor}'");
    }

    /// <summary>Which nodes of the order read only initializers and other such nodes' outputs.</summary>
    private static bool[] ConstantNodes(OnnxGraph sim, List<NodeProto> order)
    {
        var known = new HashSet<string>(sim.Graph.Initializer.Select(t => t.Name), StringComparer.Ordinal);
        var constant = new bool[order.Count];
        for (int i = 0; i < order.Count; i++)
        {
            var n = order[i];
            if (n.Attribute.Any(a => a.G is not null || a.Graphs.Count > 0)) continue;
            if (n.OpType == "Constant" || n.Input.Where(t => t.Length > 0).All(known.Contains) && n.Input.Any(t => t.Length > 0))
            {
                constant[i] = true;
                foreach (var o in n.Output) known.Add(o);
            }
        }
        return constant;
    }

    /// <summary>The cuts whose one live tensor is a float activation (not a QuantizeLinear's integer output).</summary>
    private static List<GraphCuts.Cut> FloatCuts(OnnxGraph sim, List<NodeProto> order)
    {
        var types = TypeInference.Infer(sim);
        return GraphCuts.Find(sim, order)
            .Where(c => order[c.After].OpType != "QuantizeLinear" && order[c.After].Output.Contains(c.Tensor)
                && types.GetValueOrDefault(c.Tensor, ElementType.Float) == ElementType.Float)
            .ToList();
    }

    /// <summary>Up to <see cref="MaxCheckpoints"/> cuts spread evenly over the nodes.</summary>
    private static List<GraphCuts.Cut> Choose(List<GraphCuts.Cut> cuts, int nodes)
    {
        var chosen = new List<GraphCuts.Cut>();
        for (int j = 1; j <= MaxCheckpoints && cuts.Count > 0; j++)
        {
            double target = nodes * j / (double)(MaxCheckpoints + 1);
            var best = cuts.MinBy(c => Math.Abs(c.After - target))!;
            if (!chosen.Contains(best)) chosen.Add(best);
        }
        return chosen.OrderBy(c => c.After).ToList();
    }

    public void Dispose() => _session.Dispose();
}
