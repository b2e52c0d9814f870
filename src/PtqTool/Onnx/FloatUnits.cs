using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>A function the exporter spelled as several nodes, recognized so that it stays in float as a whole.</summary>
/// <param name="Kind">LayerNorm or GELU.</param>
/// <param name="Input">The tensor it reads.</param>
/// <param name="Output">The one tensor it hands on.</param>
public sealed record FloatUnit(string Kind, string Input, string Output, IReadOnlyList<NodeProto> Nodes);

/// <summary>
/// Finds LayerNorm and GELU written out in elementary ops, whatever exporter wrote them. Quantizing their inner
/// tensors (the variance, 1 + erf) costs precision for nothing: ONNX Runtime has no integer kernel for them, and a
/// Q/DQ pair inside the pattern stops its own LayerNorm/GELU fusion. So the plan keeps a unit's nodes in float and
/// quantizes only what goes in and what comes out.
/// <list type="bullet">
/// <item>LayerNorm by structure: m = ReduceMean(x); d = x − m; v = ReduceMean(d² or d·d); y = d / √(v + ε); then
/// optionally y·γ and + β with constant γ, β.</item>
/// <item>GELU by value: from an Erf or Tanh node back to the one tensor x its input is an elementwise function of (with
/// scalar constants), then forward through elementwise ops until a tensor equals 0.5·x·(1 + erf(x/√2)) on probe values
/// (the tanh approximation agrees within 3e-4): any arrangement of the constants and multiplications is recognized.</item>
/// </list>
/// Every inner tensor must be read only inside the unit and must not be a graph output.
/// </summary>
public static class FloatUnits
{
    private static readonly HashSet<string> Elementwise = new(StringComparer.Ordinal) { "Add", "Sub", "Mul", "Div", "Pow" };

    public static List<FloatUnit> Find(OnnxGraph graph)
    {
        var units = new List<FloatUnit>();
        var taken = new HashSet<NodeProto>();
        var order = graph.TopologicalOrder();
        var position = order.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i);
        foreach (var node in order)
        {
            if (taken.Contains(node)) continue;
            var unit = node.OpType switch
            {
                "ReduceMean" => LayerNorm(graph, node),
                "Erf" or "Tanh" => Gelu(graph, node, order, position),
                _ => null,
            };
            if (unit is null || unit.Nodes.Any(taken.Contains)) continue;
            units.Add(unit);
            taken.UnionWith(unit.Nodes);
        }
        return units;
    }

    private static NodeProto? OnlyConsumer(OnnxGraph graph, string tensor, string opType)
    {
        if (graph.IsGraphOutput(tensor)) return null;
        var c = graph.Consumers(tensor);
        return c.Count == 1 && c[0].OpType == opType ? c[0] : null;
    }

    private static float? Scalar(OnnxGraph graph, string tensor)
    {
        var c = graph.ConstantValue(tensor);
        if (c is null || c.DataType != ElementType.Float || TensorData.ElementCount(c) != 1) return null;
        return TensorData.ToFloats(c, graph.BaseDirectory)[0];
    }

    private static long[] Axes(OnnxGraph graph, NodeProto reduce)
    {
        if (reduce.Input.Count > 1 && graph.ConstantValue(reduce.Input[1]) is { } a) return TensorData.ToInt64s(a, graph.BaseDirectory);
        return NodeAttributes.GetInts(reduce, "axes", []);
    }

    private static FloatUnit? LayerNorm(OnnxGraph graph, NodeProto mean)
    {
        string x = mean.Input[0];
        if (NodeAttributes.GetInt(mean, "keepdims", 1) != 1) return null;
        var sub = OnlyConsumer(graph, mean.Output[0], "Sub");
        if (sub is null || sub.Input[0] != x || sub.Input[1] != mean.Output[0] || graph.IsGraphOutput(sub.Output[0])) return null;
        string d = sub.Output[0];
        var users = graph.Consumers(d);
        if (users.Count != 2) return null;
        var square = users.FirstOrDefault(u => (u.OpType == "Pow" && u.Input[0] == d && Scalar(graph, u.Input[1]) == 2f)
                                               || (u.OpType == "Mul" && u.Input[0] == d && u.Input[1] == d));
        var div = users.FirstOrDefault(u => u.OpType == "Div" && u.Input[0] == d);
        if (square is null || div is null) return null;
        var variance = OnlyConsumer(graph, square.Output[0], "ReduceMean");
        if (variance is null || !Axes(graph, variance).SequenceEqual(Axes(graph, mean)) || NodeAttributes.GetInt(variance, "keepdims", 1) != 1) return null;
        var epsilon = OnlyConsumer(graph, variance.Output[0], "Add");
        if (epsilon is null || Scalar(graph, epsilon.Input[epsilon.Input[0] == variance.Output[0] ? 1 : 0]) is not > 0f) return null;
        var root = OnlyConsumer(graph, epsilon.Output[0], "Sqrt");
        if (root is null || div.Input[1] != root.Output[0] || graph.Consumers(root.Output[0]).Count != 1) return null;
        List<NodeProto> nodes = [mean, sub, square, variance, epsilon, root, div];
        // The affine part: y·γ, then + β, constants of any broadcastable shape.
        if (OnlyConsumer(graph, div.Output[0], "Mul") is { } gamma && gamma.Input.Any(i => graph.ConstantValue(i) is not null))
        {
            nodes.Add(gamma);
            if (OnlyConsumer(graph, gamma.Output[0], "Add") is { } beta && beta.Input.Any(i => graph.ConstantValue(i) is not null)) nodes.Add(beta);
        }
        return new FloatUnit("LayerNorm", x, nodes[^1].Output[0], nodes);
    }

    /// <param name="order">The graph's nodes in topological order, and <paramref name="position"/> each node's place in it.</param>
    private static FloatUnit? Gelu(OnnxGraph graph, NodeProto seed, List<NodeProto> order, Dictionary<NodeProto, int> position)
    {
        // Back from the seed's input to the one variable tensor x it is an elementwise function of (scalar constants
        // aside): a node with a tensor constant (a bias) or two different variable sources ends the walk there.
        (HashSet<string> Sources, List<NodeProto> Nodes) Walk(string tensor, int depth)
        {
            if (Scalar(graph, tensor) is not null) return ([], []);
            var p = graph.Producer(tensor);
            if (p is not null && Elementwise.Contains(p.OpType) && depth < 8 && !graph.IsGraphOutput(tensor)
                && p.Input.All(i => Scalar(graph, i) is not null || graph.ConstantValue(i) is null))
            {
                var parts = p.Input.Select(i => Walk(i, depth + 1)).ToList();
                var sources = parts.SelectMany(x => x.Sources).ToHashSet(StringComparer.Ordinal);
                if (sources.Count == 1) return (sources, [.. parts.SelectMany(x => x.Nodes).Distinct(), p]);
            }
            return ([tensor], []);
        }
        var (found, cone) = Walk(seed.Input[0], 0);
        if (found.Count != 1 || graph.ConstantValue(found.First()) is not null) return null;
        string source = found.First();
        var nodes = new List<NodeProto>(cone);
        nodes.Add(seed);

        // Forward: elementwise nodes reading only x, the unit's tensors and scalar constants, one at a time in graph
        // order, until one computes GELU(x).
        var values = new Dictionary<string, double[]>(StringComparer.Ordinal) { [source] = Probe.Values };
        foreach (var n in order.Where(nodes.Contains))
            if (!Evaluate(graph, n, values)) return null;
        for (int step = 0; step < 6; step++)
        {
            var next = nodes.SelectMany(n => graph.Consumers(n.Output[0])).Concat(graph.Consumers(source))
                .Where(c => !nodes.Contains(c) && Elementwise.Contains(c.OpType) && c.Input.All(i => values.ContainsKey(i) || Scalar(graph, i) is not null))
                .Distinct().OrderBy(c => position[c]).FirstOrDefault();
            if (next is null || !Evaluate(graph, next, values)) return null;
            nodes.Add(next);
            if (Probe.IsGelu(values[next.Output[0]]))
                return Closed(graph, nodes, source, next.Output[0]);
        }
        return null;
    }

    /// <summary>The unit of the nodes the output depends on, when none of its inner tensors is read from outside.</summary>
    private static FloatUnit? Closed(OnnxGraph graph, List<NodeProto> candidates, string input, string output)
    {
        var needed = new HashSet<NodeProto>();
        var stack = new Stack<string>([output]);
        while (stack.Count > 0)
        {
            var p = graph.Producer(stack.Pop());
            if (p is null || !candidates.Contains(p) || !needed.Add(p)) continue;
            foreach (var i in p.Input) stack.Push(i);
        }
        foreach (var n in needed)
            if (n.Output[0] != output && (graph.IsGraphOutput(n.Output[0]) || graph.Consumers(n.Output[0]).Any(c => !needed.Contains(c)))) return null;
        return new FloatUnit("GELU", input, output, candidates.Where(needed.Contains).ToList());
    }

    private static bool Evaluate(OnnxGraph graph, NodeProto node, Dictionary<string, double[]> values)
    {
        double[]? Read(string t) => values.TryGetValue(t, out var v) ? v
            : Scalar(graph, t) is float c ? Enumerable.Repeat((double)c, Probe.Values.Length).ToArray() : null;
        var a = Read(node.Input[0]);
        var b = node.Input.Count > 1 ? Read(node.Input[1]) : null;
        if (a is null || (node.Input.Count > 1 && b is null)) return false;
        double[]? y = node.OpType switch
        {
            "Add" => a.Zip(b!, (p, q) => p + q).ToArray(),
            "Sub" => a.Zip(b!, (p, q) => p - q).ToArray(),
            "Mul" => a.Zip(b!, (p, q) => p * q).ToArray(),
            "Div" => a.Zip(b!, (p, q) => p / q).ToArray(),
            "Pow" => a.Zip(b!, Math.Pow).ToArray(),
            "Erf" => a.Select(Probe.Erf).ToArray(),
            "Tanh" => a.Select(Math.Tanh).ToArray(),
            _ => null,
        };
        if (y is null) return false;
        values[node.Output[0]] = y;
        return true;
    }

    /// <summary>The values a candidate GELU is evaluated at, and the test.</summary>
    private static class Probe
    {
        public static readonly double[] Values = Enumerable.Range(-16, 33).Select(i => i / 4.0).ToArray();

        public static bool IsGelu(double[] y)
        {
            for (int i = 0; i < Values.Length; i++)
            {
                double x = Values[i], g = 0.5 * x * (1 + Erf(x / Math.Sqrt(2)));
                if (!(Math.Abs(y[i] - g) <= 1e-3)) return false;
            }
            return true;
        }

        /// <summary>erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).</summary>
        public static double Erf(double x)
        {
            double t = 1 / (1 + 0.3275911 * Math.Abs(x));
            double poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
            double e = 1 - poly * Math.Exp(-x * x);
            return x >= 0 ? e : -e;
        }
    }
}
