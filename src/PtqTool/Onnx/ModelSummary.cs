using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>What `ptq inspect` prints: opsets, inputs and outputs with shapes, op histogram, parameters, BatchNormalization, size.</summary>
public sealed record ModelSummary(
    string Path,
    long FileBytes,
    long IrVersion,
    string Producer,
    IReadOnlyList<(string Domain, long Version)> Opsets,
    IReadOnlyList<(string Name, string Type, string Shape)> Inputs,
    IReadOnlyList<(string Name, string Type, string Shape)> Outputs,
    IReadOnlyList<(string OpType, int Count)> Ops,
    long Parameters,
    int BatchNormCount,
    bool HasExternalData)
{
    public static ModelSummary Of(string path)
    {
        var graph = OnnxGraph.Load(path);
        var model = graph.Model;
        var ops = model.Graph.Node.GroupBy(n => string.IsNullOrEmpty(n.Domain) ? n.OpType : $"{n.Domain}.{n.OpType}")
            .Select(g => (g.Key, g.Count())).OrderByDescending(x => x.Item2).ThenBy(x => x.Key, StringComparer.Ordinal).ToList();
        long parameters = model.Graph.Initializer.Sum(TensorData.ElementCount);
        return new ModelSummary(
            path,
            new FileInfo(path).Length,
            model.IrVersion,
            $"{model.ProducerName} {model.ProducerVersion}".Trim(),
            model.OpsetImport.Select(o => (string.IsNullOrEmpty(o.Domain) ? "ai.onnx" : o.Domain, o.Version)).ToList(),
            graph.DataInputs().Select(Describe).ToList(),
            model.Graph.Output.Select(Describe).ToList(),
            ops,
            parameters,
            model.Graph.Node.Count(n => n.OpType == "BatchNormalization"),
            OnnxModelFile.HasExternalData(model));
    }

    public static string ShapeText(TypeProto? type)
    {
        var shape = type?.TensorType?.Shape;
        if (shape is null) return "?";
        return "[" + string.Join(", ", shape.Dim.Select(d => d.HasDimValue ? d.DimValue.ToString(System.Globalization.CultureInfo.InvariantCulture) : d.HasDimParam ? d.DimParam : "?")) + "]";
    }

    private static (string, string, string) Describe(ValueInfoProto v) =>
        (v.Name, v.Type?.TensorType is { } t ? ElementType.Name(t.ElemType) : "?", ShapeText(v.Type));

    public string ToText()
    {
        var w = new System.Text.StringBuilder();
        w.AppendLine($"model       {Path}");
        w.AppendLine($"size        {Format.Bytes(FileBytes)}{(HasExternalData ? " (+ external data)" : "")}");
        w.AppendLine($"ir_version  {IrVersion}   producer: {(Producer.Length > 0 ? Producer : "-")}");
        w.AppendLine($"opsets      {string.Join(", ", Opsets.Select(o => $"{o.Domain} {o.Version}"))}");
        foreach (var (name, type, shape) in Inputs) w.AppendLine($"input       {name}  {type} {shape}");
        foreach (var (name, type, shape) in Outputs) w.AppendLine($"output      {name}  {type} {shape}");
        w.AppendLine($"parameters  {Parameters:N0}");
        w.AppendLine($"batchnorm   {(BatchNormCount > 0 ? $"yes ({BatchNormCount} nodes)" : "no")}");
        w.AppendLine($"nodes       {Ops.Sum(o => o.Count)}");
        foreach (var (op, count) in Ops) w.AppendLine($"  {op,-24}{count,6}");
        return w.ToString();
    }
}
