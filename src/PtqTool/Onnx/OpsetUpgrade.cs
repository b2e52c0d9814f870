using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>What an opset upgrade did: the versions and how many nodes each rule rewrote.</summary>
public sealed record OpsetUpgradeSummary(long From, long To, IReadOnlyDictionary<string, int> Rewritten)
{
    public bool Upgraded => From != To;

    public override string ToString() => Upgraded
        ? $"opset {From} → {To}" + (Rewritten.Count > 0 ? $" ({string.Join(", ", Rewritten.Select(kv => $"{kv.Key} {kv.Value}"))})" : "")
        : $"opset {From}";
}

/// <summary>
/// Upgrades a model of opset 7–12 to opset 13, where every QuantizeLinear/DequantizeLinear feature ptq writes exists
/// (per-channel axis). One rule per operator whose definition changed between those versions in a way that matters
/// (attributes that became inputs, changed axis semantics, removed operators); operators that only gained types or
/// optional attributes with the old defaults need nothing. Subgraphs (If, Loop, Scan) are not upgraded: a model that
/// has them is refused naming the op. Changes per operator follow the ONNX operator changelog (docs/Changelog.md of
/// onnx/onnx).
/// </summary>
public static class OpsetUpgrade
{
    public const long Target = 13;
    public const long Oldest = 7;

    public static OpsetUpgradeSummary ToOpset13(OnnxGraph graph, string nameForErrors)
    {
        long from = graph.OpsetVersion();
        if (from >= Target) return new OpsetUpgradeSummary(from, from, new Dictionary<string, int>());
        if (from < Oldest)
            throw new PtqException($"{nameForErrors}: opset {from} is older than ptq reads (opset {Oldest} or later: re-export the model)");
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var ranks = RankInference.Infer(graph);
        foreach (var node in graph.Graph.Node.ToList())
        {
            if (node.Domain is { Length: > 0 } d && d != "ai.onnx") continue;
            if (node.Attribute.Any(a => a.G is not null || a.Graphs.Count > 0))
                throw new PtqException($"{nameForErrors}: node '{node.Name}' ({node.OpType}) has a subgraph; ptq cannot upgrade opset {from} models with subgraphs to opset {Target}");
            if (Rewrite(graph, node, from, ranks, nameForErrors)) counts[node.OpType] = counts.GetValueOrDefault(node.OpType) + 1;
        }
        foreach (var o in graph.Model.OpsetImport)
            if ((o.Domain ?? "") is "" or "ai.onnx") o.Version = Target;
        if (graph.Model.IrVersion < 7) graph.Model.IrVersion = 7;
        graph.SortNodes();
        return new OpsetUpgradeSummary(from, Target, counts);
    }

    /// <returns>Whether the node was rewritten.</returns>
    private static bool Rewrite(OnnxGraph g, NodeProto n, long from, Dictionary<string, int> ranks, string file)
    {
        switch (n.OpType)
        {
            case "Softmax" or "LogSoftmax" or "Hardmax":
                return CoercedSoftmax(g, n, ranks);
            case "Clip" when from < 11:
                AttributesToInputs(g, n, ("min", ElementType.Float, float.NegativeInfinity), ("max", ElementType.Float, float.PositiveInfinity));
                return true;
            case "Pad" when from < 11:
            {
                var pads = NodeAttributes.GetInts(n, "pads", []);
                float value = NodeAttributes.GetFloat(n, "value", 0);
                Remove(n, "pads", "value");
                n.Input.Add(Const(g, n, "pads", TensorData.FromInt64("", [pads.Length], pads)));
                n.Input.Add(Const(g, n, "constant_value", TensorData.Scalar("", value)));
                return true;
            }
            case "Split" when NodeAttributes.Find(n, "split") is { } split:
                Remove(n, "split");
                n.Input.Add(Const(g, n, "split", TensorData.FromInt64("", [split.Ints.Count], split.Ints.ToArray())));
                return true;
            case "Squeeze" or "Unsqueeze" or "ReduceSum" when NodeAttributes.Find(n, "axes") is { } axes:
                Remove(n, "axes");
                n.Input.Add(Const(g, n, "axes", TensorData.FromInt64("", [axes.Ints.Count], axes.Ints.ToArray())));
                return true;
            case "Slice" when from < 10:
            {
                var starts = NodeAttributes.GetInts(n, "starts", []);
                var ends = NodeAttributes.GetInts(n, "ends", []);
                var axes = NodeAttributes.GetInts(n, "axes", Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray());
                Remove(n, "starts", "ends", "axes");
                n.Input.Add(Const(g, n, "starts", TensorData.FromInt64("", [starts.Length], starts)));
                n.Input.Add(Const(g, n, "ends", TensorData.FromInt64("", [ends.Length], ends)));
                n.Input.Add(Const(g, n, "axes", TensorData.FromInt64("", [axes.Length], axes)));
                return true;
            }
            case "TopK" when from < 10:
            {
                long k = NodeAttributes.GetInt(n, "k", 1);
                Remove(n, "k");
                n.Input.Add(Const(g, n, "k", TensorData.FromInt64("", [1], [k])));
                return true;
            }
            case "Dropout":
                // Inference: Dropout is the identity; its mask output has no meaning there.
                if (n.Output.Count > 1 && n.Output[1].Length > 0 && g.Consumers(n.Output[1]).Count > 0)
                    throw new PtqException($"{file}: node '{n.Name}' uses Dropout's mask output; ptq cannot upgrade it");
                n.OpType = "Identity";
                n.Attribute.Clear();
                while (n.Input.Count > 1) n.Input.RemoveAt(n.Input.Count - 1);
                while (n.Output.Count > 1) n.Output.RemoveAt(n.Output.Count - 1);
                return true;
            case "BatchNormalization" when from < 9:
                if (NodeAttributes.GetInt(n, "spatial", 1) != 1)
                    throw new PtqException($"{file}: node '{n.Name}' is a BatchNormalization with spatial=0, which opset 9 removed; ptq cannot upgrade it");
                Remove(n, "spatial", "is_test", "consumed_inputs");
                return true;
            case "Upsample":
                return UpsampleToResize(g, n, from);
            case "Resize" when from < 11:
            {
                // Resize-10 had Upsample's semantics (asymmetric coordinates, nearest rounds down) and no roi input.
                string mode = NodeAttributes.GetString(n, "mode", "nearest");
                n.Attribute.Clear();
                n.Attribute.Add(NodeAttributes.String("mode", mode));
                n.Attribute.Add(NodeAttributes.String("coordinate_transformation_mode", "asymmetric"));
                if (mode == "nearest") n.Attribute.Add(NodeAttributes.String("nearest_mode", "floor"));
                n.Input.Insert(1, "");
                return true;
            }
            case "Scatter":
                n.OpType = "ScatterElements";
                return true;
            case "If" or "Loop" or "Scan":
                throw new PtqException($"{file}: node '{n.Name}' ({n.OpType}) changed between opset {from} and {Target}; ptq cannot upgrade it");
            default:
                return false;
        }
    }

    /// <summary>
    /// Softmax before opset 13 flattened its input to 2-D at `axis` (default 1) and normalized over the second
    /// dimension; from 13 it normalizes over `axis` (default −1) alone. Where the input's rank r is known and
    /// axis = r − 1 both agree; otherwise Flatten → Softmax(−1) → Reshape(Shape(x)) computes the old result exactly.
    /// </summary>
    private static bool CoercedSoftmax(OnnxGraph g, NodeProto n, Dictionary<string, int> ranks)
    {
        long axis = NodeAttributes.GetInt(n, "axis", 1);
        Remove(n, "axis");
        if (ranks.TryGetValue(n.Input[0], out int rank) && (axis == rank - 1 || axis == -1))
        {
            n.Attribute.Add(NodeAttributes.Int("axis", -1));
            return true;
        }
        string x = n.Input[0], y = n.Output[0];
        string shape = g.UniqueName(x + "_shape"), flat = g.UniqueName(x + "_flat"), soft = g.UniqueName(y + "_2d");
        g.AddNode(NodeAttributes.Node("Shape", g.UniqueName(n.Name + "_Shape"), [x], [shape]));
        g.AddNode(NodeAttributes.Node("Flatten", g.UniqueName(n.Name + "_Flatten"), [x], [flat], NodeAttributes.Int("axis", axis)));
        n.Input[0] = flat;
        n.Output[0] = soft;
        n.Attribute.Add(NodeAttributes.Int("axis", -1));
        g.AddNode(NodeAttributes.Node("Reshape", g.UniqueName(n.Name + "_Reshape"), [soft, shape], [y]));
        return true;
    }

    /// <summary>Upsample (removed in opset 10) as Resize-13 with Upsample's semantics: asymmetric coordinates; nearest rounds down.</summary>
    private static bool UpsampleToResize(OnnxGraph g, NodeProto n, long from)
    {
        string mode = NodeAttributes.GetString(n, "mode", "nearest");
        string scales;
        if (NodeAttributes.Find(n, "scales") is { } attr)
            scales = Const(g, n, "scales", TensorData.FromFloats("", [attr.Floats.Count], attr.Floats.ToArray()));
        else scales = n.Input[1];
        n.OpType = "Resize";
        n.Attribute.Clear();
        n.Attribute.Add(NodeAttributes.String("mode", mode is "bilinear" ? "linear" : mode));
        n.Attribute.Add(NodeAttributes.String("coordinate_transformation_mode", "asymmetric"));
        if (mode == "nearest") n.Attribute.Add(NodeAttributes.String("nearest_mode", "floor"));
        string x = n.Input[0];
        n.Input.Clear();
        n.Input.Add(x);
        n.Input.Add("");
        n.Input.Add(scales);
        return true;
    }

    private static void AttributesToInputs(OnnxGraph g, NodeProto n, params (string Name, int Type, float Default)[] attributes)
    {
        foreach (var (name, _, fallback) in attributes)
        {
            float v = NodeAttributes.GetFloat(n, name, fallback);
            Remove(n, name);
            while (n.Input.Count < 1 + Array.FindIndex(attributes, a => a.Name == name)) n.Input.Add("");
            n.Input.Add(float.IsInfinity(v) ? "" : Const(g, n, name, TensorData.Scalar("", v)));
        }
        while (n.Input.Count > 1 && n.Input[^1].Length == 0) n.Input.RemoveAt(n.Input.Count - 1);
    }

    private static string Const(OnnxGraph g, NodeProto n, string what, TensorProto value)
    {
        value.Name = g.UniqueName($"{(n.Name.Length > 0 ? n.Name : n.Output[0])}_{what}");
        g.AddInitializer(value);
        return value.Name;
    }

    private static void Remove(NodeProto n, params string[] names)
    {
        foreach (var name in names)
            if (NodeAttributes.Find(n, name) is { } a) n.Attribute.Remove(a);
    }
}
