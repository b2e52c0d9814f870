using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Distill;

/// <summary>
/// What backward rules build with: the gradient graph being written, static shapes of every forward tensor (from one
/// forward run at the distillation batch size), and helpers that emit nodes and constants.
/// </summary>
public sealed class GradientContext
{
    private int _counter;

    public OnnxGraph Graph { get; }
    public IReadOnlyDictionary<string, int[]> Shapes { get; }

    public GradientContext(OnnxGraph graph, IReadOnlyDictionary<string, int[]> shapes)
    {
        Graph = graph;
        Shapes = shapes;
    }

    public int[] Shape(string tensor) =>
        Shapes.TryGetValue(tensor, out var s) ? s : throw new PtqException($"no shape known for tensor '{tensor}'");

    public string Name(string hint) => Graph.UniqueName($"grad_{hint}_{_counter++}");

    /// <summary>Adds a node and returns its (single) output name.</summary>
    public string Op(string opType, IEnumerable<string> inputs, params AttributeProto[] attributes)
    {
        string output = Name(opType);
        Graph.AddNode(NodeAttributes.Node(opType, Name(opType + "_node"), inputs, [output], attributes));
        return output;
    }

    public string Floats(float[] values, int[] shape)
    {
        string name = Name("const");
        Graph.AddInitializer(TensorData.FromFloats(name, shape, values));
        return name;
    }

    public string Scalar(float value) => Floats([value], []);

    public string Longs(long[] values)
    {
        string name = Name("ints");
        Graph.AddInitializer(TensorData.FromInt64(name, [values.Length], values));
        return name;
    }

    /// <summary>
    /// Sums a gradient of a broadcast output shape back to an input shape (the reverse of numpy broadcasting): reduce over
    /// the leading extra axes and over the axes where the input had size 1, then reshape.
    /// </summary>
    public string Unbroadcast(string gradient, int[] outputShape, int[] inputShape)
    {
        if (outputShape.SequenceEqual(inputShape)) return gradient;
        int lead = outputShape.Length - inputShape.Length;
        var axes = new List<long>();
        for (int i = 0; i < outputShape.Length; i++)
        {
            int inDim = i < lead ? 1 : inputShape[i - lead];
            if (i < lead || (inDim == 1 && outputShape[i] != 1)) axes.Add(i);
        }
        string reduced = axes.Count == 0 ? gradient : Op("ReduceSum", [gradient, Longs(axes.ToArray())], NodeAttributes.Int("keepdims", 1));
        return Op("Reshape", [reduced, Longs(inputShape.Select(d => (long)d).ToArray())]);
    }
}
