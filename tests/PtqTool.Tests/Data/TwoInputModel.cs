using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Tests.Data;

/// <summary>
/// A small encoder-like model with a float input and int64 token inputs of a symbolic sequence length:
/// features x [N, 8], ids [N, S] and mask [N, S] (int64). Embeddings Gather(E, ids) are masked, summed over the sequence
/// and added to MatMul(x, W1); a Relu and MatMul(·, W2) give y [N, 4].
/// </summary>
public static class TwoInputModel
{
    public const int Features = 8, Vocabulary = 16, Outputs = 4;

    public static ModelProto Build(int seed = 3)
    {
        var rng = new Random(seed);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "two_inputs" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        var g = new OnnxGraph(model);
        g.Graph.Input.Add(Value("x", ElementType.Float, [-1, Features]));
        g.Graph.Input.Add(Value("ids", ElementType.Int64, [-1, -1]));
        g.Graph.Input.Add(Value("mask", ElementType.Int64, [-1, -1]));
        g.AddInitializer(TensorData.FromFloats("E", [Vocabulary, Features], Random(Vocabulary * Features)));
        g.AddInitializer(TensorData.FromFloats("W1", [Features, Features], Random(Features * Features)));
        g.AddInitializer(TensorData.FromFloats("W2", [Features, Outputs], Random(Features * Outputs)));
        g.AddInitializer(TensorData.FromInt64("axis_last", [1], [-1]));
        g.AddInitializer(TensorData.FromInt64("axis_seq", [1], [1]));
        g.AddNode(NodeAttributes.Node("Gather", "embed", ["E", "ids"], ["e"]));
        g.AddNode(NodeAttributes.Node("Cast", "mask_float", ["mask"], ["m"], NodeAttributes.Int("to", ElementType.Float)));
        g.AddNode(NodeAttributes.Node("Unsqueeze", "mask_axis", ["m", "axis_last"], ["m3"]));
        g.AddNode(NodeAttributes.Node("Mul", "masked", ["e", "m3"], ["em"]));
        g.AddNode(NodeAttributes.Node("ReduceSum", "pool", ["em", "axis_seq"], ["pooled"], NodeAttributes.Int("keepdims", 0)));
        g.AddNode(NodeAttributes.Node("MatMul", "dense1", ["x", "W1"], ["h"]));
        g.AddNode(NodeAttributes.Node("Add", "join", ["h", "pooled"], ["s"]));
        g.AddNode(NodeAttributes.Node("Relu", "act", ["s"], ["r"]));
        g.AddNode(NodeAttributes.Node("MatMul", "dense2", ["r", "W2"], ["y"]));
        g.Graph.Output.Add(Value("y", ElementType.Float, [-1, Outputs]));
        return model;
    }

    /// <summary>The model's inputs as ptq reads them.</summary>
    public static readonly InputSpec[] Inputs =
    [
        new("x", ElementType.Float, [-1, Features]),
        new("ids", ElementType.Int64, [-1, -1]),
        new("mask", ElementType.Int64, [-1, -1]),
    ];

    /// <summary>A tensor value info; a dimension ≤ 0 is symbolic ("batch" first, "sequence" after).</summary>
    public static ValueInfoProto Value(string name, int type, int[] shape)
    {
        var v = new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = type, Shape = new TensorShapeProto() } } };
        foreach (int d in shape)
            v.Type.TensorType.Shape.Dim.Add(d > 0 ? new TensorShapeProto.Types.Dimension { DimValue = d } : new TensorShapeProto.Types.Dimension { DimParam = v.Type.TensorType.Shape.Dim.Count == 0 ? "batch" : "sequence" });
        return v;
    }

    /// <summary>One random sample (or batch of <paramref name="batch"/>) of sequence length <paramref name="sequence"/>.</summary>
    public static (float[] X, long[] Ids, long[] Mask) Sample(Random rng, int batch, int sequence)
    {
        var x = Enumerable.Range(0, batch * Features).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var ids = Enumerable.Range(0, batch * sequence).Select(_ => (long)rng.Next(Vocabulary)).ToArray();
        var mask = Enumerable.Range(0, batch * sequence).Select(i => i % sequence < sequence - 1 || rng.Next(2) == 0 ? 1L : 0L).ToArray();
        return (x, ids, mask);
    }

    /// <summary>An .npz of one batch keyed by input name.</summary>
    public static byte[] Npz(float[] x, long[] ids, long[] mask, int batch, int sequence) => NpzWriter.Write([
        ("x", NpyReader.Write(x, [batch, Features])),
        ("ids", NpyReader.Write(ids, [batch, sequence])),
        ("mask", NpyReader.Write(mask, [batch, sequence])),
    ]);

    /// <summary>A folder of <paramref name="count"/> single-sample .npz files, sequence lengths cycling through <paramref name="sequences"/>.</summary>
    public static string WriteSamples(string dir, int count, int[] sequences, int seed)
    {
        Directory.CreateDirectory(dir);
        var rng = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            int s = sequences[i % sequences.Length];
            var (x, ids, mask) = Sample(rng, 1, s);
            File.WriteAllBytes(Path.Combine(dir, $"s{i:D4}.npz"), Npz(x, ids, mask, 1, s));
        }
        return dir;
    }
}
