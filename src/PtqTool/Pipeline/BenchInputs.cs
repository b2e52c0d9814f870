using Microsoft.ML.OnnxRuntime.Tensors;
using PtqTool.Onnx;

namespace PtqTool.Pipeline;

/// <summary>
/// The batch `ptq bench` times: one tensor for every input of the model, of the declared shape with the batch
/// dimension set to --batch, a 4-D input's spatial dimensions to --size, and any other symbolic dimension (a sequence
/// length) to --seq-len. Float inputs get uniform values in [−1, 1); integer and bool inputs get values a text encoder
/// accepts: 1 for a name with "mask", 0 for "type" or "segment" (token types), 0…n−1 along the last axis for
/// "position", and token ids otherwise: 1…999, or below the rows of the smallest embedding table the input indexes.
/// </summary>
public static class BenchInputs
{
    public sealed record Input(string Name, TensorElementType Type, int[] Shape);

    /// <param name="graph">The model's graph, to keep token ids within its embedding tables (loaded only for an input of token ids).</param>
    public static (ModelFeed Feed, IReadOnlyList<Input> Inputs) For(OrtRunner runner, Lazy<OnnxGraph> graph, int batch, string? size, int? sequenceLength, string model)
    {
        var rng = new Random(0);
        var inputs = new List<Input>();
        var tensors = new List<FloatTensor>();
        foreach (var name in runner.InputNames)
        {
            var declared = runner.InputShape(name);
            var shape = Shape(declared, batch, size, sequenceLength, name, model);
            var type = runner.InputElementType(name);
            int n = FloatTensor.Count(shape), last = shape.Length > 0 ? Math.Max(shape[^1], 1) : 1;
            string lower = name.ToLowerInvariant();
            var data = new float[n];
            bool isFloat = type is TensorElementType.Float or TensorElementType.Float16 or TensorElementType.Double or TensorElementType.BFloat16;
            bool mask = type == TensorElementType.Bool || lower.Contains("mask", StringComparison.Ordinal);
            bool tokenType = lower.Contains("type", StringComparison.Ordinal) || lower.Contains("segment", StringComparison.Ordinal);
            bool position = lower.Contains("position", StringComparison.Ordinal);
            int ids = isFloat || mask || tokenType || position ? 0 : TokenIds(graph.Value, name);
            for (int i = 0; i < n; i++)
                data[i] = isFloat ? (float)(rng.NextDouble() * 2 - 1)
                    : mask ? 1
                    : tokenType ? 0
                    : position ? i % last
                    : ids > 1 ? rng.Next(1, ids) : 0;
            inputs.Add(new Input(name, type, shape));
            tensors.Add(new FloatTensor(data, shape));
        }
        return (new ModelFeed([.. inputs.Select(i => (string?)i.Name)], tensors), inputs);
    }

    /// <summary>How many token ids are safe for an integer input: the rows of the smallest constant table a Gather
    /// indexes with it (axis 0), at most 1000.</summary>
    private static int TokenIds(OnnxGraph graph, string input)
    {
        int rows = 1000;
        foreach (var gather in graph.Consumers(input).Where(n => n.OpType == "Gather" && n.Input.Count > 1 && n.Input[1] == input && NodeAttributes.GetInt(n, "axis", 0) == 0))
            if (graph.ConstantValue(gather.Input[0]) is { Dims.Count: > 0 } table)
                rows = (int)Math.Min(rows, table.Dims[0]);
        return rows;
    }

    private static int[] Shape(int[] declared, int batch, string? size, int? sequenceLength, string name, string model)
    {
        var shape = declared.ToArray();
        if (shape.Length > 0 && shape[0] <= 0) shape[0] = batch;
        if (size is not null && shape.Length == 4)
        {
            var (w, h) = PreprocessingResolver.ParseSize(size);
            bool nhwc = shape[3] is 1 or 3 && shape[1] is not (1 or 3);
            if (nhwc) { shape[1] = h; shape[2] = w; } else { shape[2] = h; shape[3] = w; }
        }
        for (int d = 1; d < shape.Length; d++)
            if (shape[d] <= 0 && sequenceLength is int length) shape[d] = length;
        if (shape.Any(d => d <= 0))
            throw new PtqException($"{model}: input '{name}' shape [{string.Join(", ", declared)}] has symbolic dimensions; give {(shape.Length == 4 ? "--size WxH" : "--seq-len N")}");
        return shape;
    }
}
