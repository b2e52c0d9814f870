namespace PtqTool.Onnx;

/// <summary>
/// The nodes that compute or apply an attention mask: float tensors derived from integer graph inputs (attention_mask,
/// lengths) without passing through a data path. A tensor is data when it is a float graph input, an embedding lookup
/// (Gather from a float initializer by integer indices) or computed from data. Mask tensors hold a few extreme values
/// (0 and −10000 where a sequence is padded) whose per-tensor quantization would flatten the attention scores they are
/// added to, so both the nodes that build them and the nodes that join them with data stay in float; the ops after
/// (Softmax) then read a float input, and are quantized on their output only.
/// </summary>
public static class MaskPaths
{
    public static HashSet<Proto.NodeProto> Find(OnnxGraph graph)
    {
        var integerInputs = graph.DataInputs().Where(i => i.Type?.TensorType is { } t && !ElementType.IsFloat(t.ElemType))
            .Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var nodes = new HashSet<Proto.NodeProto>();
        if (integerInputs.Count == 0) return nodes;
        var floatInputs = graph.DataInputs().Select(i => i.Name).Where(n => !integerInputs.Contains(n));
        var data = new HashSet<string>(floatInputs, StringComparer.Ordinal);
        var mask = new HashSet<string>(integerInputs, StringComparer.Ordinal);
        foreach (var node in graph.TopologicalOrder())
        {
            bool fromData = node.Input.Any(data.Contains);
            bool fromMask = node.Input.Any(mask.Contains);
            bool embedding = node.OpType == "Gather" && node.Input.Count == 2 && graph.Initializer(node.Input[0]) is { DataType: ElementType.Float };
            if (fromData || embedding)
            {
                foreach (var o in node.Output) data.Add(o);
                if (fromMask && !embedding) nodes.Add(node);
            }
            else if (fromMask)
            {
                foreach (var o in node.Output) mask.Add(o);
                nodes.Add(node);
            }
        }
        return nodes;
    }
}
