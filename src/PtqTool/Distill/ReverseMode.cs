using PtqTool.Onnx.Proto;

namespace PtqTool.Distill;

/// <summary>
/// Reverse-mode differentiation over a list of forward nodes already in the gradient graph: walks them backwards,
/// sums the gradient parts each output received, and asks each op's <see cref="IBackwardRule"/> for the gradients of
/// the inputs that need one. Shared by the ZeroQ graph (gradient of the input) and block reconstruction (gradients of
/// the weights).
/// </summary>
public static class ReverseMode
{
    /// <param name="forward">The forward nodes in topological order.</param>
    /// <param name="gradients">Tensor → gradient parts: seeded with the loss's gradients, filled in for every input reached.</param>
    /// <param name="needsGradient">Whether a tensor needs a gradient (it depends on something differentiated).</param>
    public static void Run(IReadOnlyList<NodeProto> forward, Dictionary<string, List<string>> gradients, GradientContext context, Func<string, bool> needsGradient)
    {
        for (int k = forward.Count - 1; k >= 0; k--)
        {
            var node = forward[k];
            if (node.OpType == "Split")
            {
                if (needsGradient(node.Input[0]) && SplitBackward(node, gradients, context) is string dSplit)
                    Accumulate(gradients, node.Input[0], dSplit);
                continue;
            }
            if (!gradients.TryGetValue(node.Output[0], out var parts)) continue;
            string dY = Sum(context, parts);
            var rule = BackwardRules.For(node);
            var result = rule.Backward(node, dY, context, i => i < node.Input.Count && node.Input[i].Length > 0 && needsGradient(node.Input[i]));
            foreach (var (index, g) in result) Accumulate(gradients, node.Input[index], g);
        }
    }

    /// <summary>The tensors that depend on any of <paramref name="sources"/> through <paramref name="forward"/> (sources included).</summary>
    public static HashSet<string> Dependents(IEnumerable<NodeProto> forward, IEnumerable<string> sources)
    {
        var dependent = new HashSet<string>(sources, StringComparer.Ordinal);
        foreach (var n in forward)
            if (n.Input.Any(dependent.Contains)) foreach (var o in n.Output) dependent.Add(o);
        return dependent;
    }

    public static void Accumulate(Dictionary<string, List<string>> gradients, string tensor, string gradient)
    {
        if (!gradients.TryGetValue(tensor, out var list)) gradients[tensor] = list = [];
        list.Add(gradient);
    }

    public static string Sum(GradientContext c, List<string> parts) => parts.Count == 1 ? parts[0] : c.Op("Sum", parts);

    /// <summary>
    /// Split has one output per part: the input's gradient is the Concat of the parts' gradients along the split axis,
    /// with zeros for parts that receive none. Null when no part has a gradient.
    /// </summary>
    private static string? SplitBackward(NodeProto node, Dictionary<string, List<string>> gradients, GradientContext c)
    {
        if (!node.Output.Any(o => gradients.ContainsKey(o))) return null;
        long axis = Onnx.NodeAttributes.GetInt(node, "axis", 0);
        if (axis < 0) axis += c.Shape(node.Input[0]).Length;
        var parts = node.Output.Select(o => gradients.TryGetValue(o, out var list)
            ? Sum(c, list)
            : c.Floats(new float[c.Shape(o).Aggregate(1, (a, b) => a * b)], c.Shape(o))).ToList();
        return c.Op("Concat", parts, Onnx.NodeAttributes.Int("axis", axis));
    }
}
