using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Tests.Distill;

/// <summary>Builds small random ONNX models for gradient checks.</summary>
public sealed class TinyModels
{
    private readonly OnnxGraph _graph;
    private readonly Random _rng;
    private int _n;

    public TinyModels(int[] inputShape, int seed, int opset = 13)
    {
        _rng = new Random(seed);
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "tiny" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        var input = new ValueInfoProto { Name = "x", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementType.Float, Shape = new TensorShapeProto() } } };
        foreach (int d in inputShape) input.Type.TensorType.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        model.Graph.Input.Add(input);
        _graph = new OnnxGraph(model);
        InputShape = inputShape;
    }

    public int[] InputShape { get; }
    public ModelProto Model => _graph.Model;

    public string Weight(params int[] shape) => Const(shape, () => (float)(_rng.NextDouble() * 2 - 1) * 0.5f);

    public string Const(int[] shape, Func<float> value)
    {
        string name = $"w{_n++}";
        _graph.AddInitializer(TensorData.FromFloats(name, shape, Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => value()).ToArray()));
        return name;
    }

    /// <summary>A constant of exactly these values.</summary>
    public string ConstValues(int[] shape, float[] values)
    {
        string name = $"w{_n++}";
        _graph.AddInitializer(TensorData.FromFloats(name, shape, values));
        return name;
    }

    /// <summary>An int64 constant (shapes, axes).</summary>
    public string ConstLongs(long[] values)
    {
        string name = $"w{_n++}";
        _graph.AddInitializer(TensorData.FromInt64(name, [values.Length], values));
        return name;
    }

    public string Op(string op, string[] inputs, params AttributeProto[] attributes)
    {
        string output = $"t{_n++}";
        _graph.AddNode(NodeAttributes.Node(op, $"n{_n++}", inputs, [output], attributes));
        return output;
    }

    public string Conv(string x, int inC, int outC, int k, int group = 1, long[]? strides = null, long[]? pads = null, long[]? dilations = null)
    {
        var attrs = new List<AttributeProto> { NodeAttributes.Int("group", group) };
        if (strides is not null) attrs.Add(NodeAttributes.Ints("strides", strides));
        if (pads is not null) attrs.Add(NodeAttributes.Ints("pads", pads));
        if (dilations is not null) attrs.Add(NodeAttributes.Ints("dilations", dilations));
        return Op("Conv", [x, Weight(outC, inC / group, k, k), Weight(outC)], [.. attrs]);
    }

    /// <summary>An inference BatchNormalization with random running statistics; its input joins the ZeroQ loss.</summary>
    /// <param name="mixedSigns">Makes every other γ negative.</param>
    public string BatchNorm(string x, int channels, bool mixedSigns = false)
    {
        int channel = 0;
        string gamma = Const([channels], () => (float)(0.5 + _rng.NextDouble()) * (mixedSigns && channel++ % 2 == 1 ? -1 : 1));
        string beta = Const([channels], () => (float)(_rng.NextDouble() - 0.5));
        string mean = Const([channels], () => (float)(_rng.NextDouble() - 0.5));
        string variance = Const([channels], () => (float)(0.2 + _rng.NextDouble()));
        return Op("BatchNormalization", [x, gamma, beta, mean, variance], NodeAttributes.Float("epsilon", 1e-5f));
    }

    /// <summary>A second (float) graph input, such as an attention mask a block reads beside x.</summary>
    public string AddInput(string name, int[] shape)
    {
        var input = new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementType.Float, Shape = new TensorShapeProto() } } };
        foreach (int d in shape) input.Type.TensorType.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        _graph.Graph.Input.Add(input);
        return name;
    }

    public ModelProto Finish(string output)
    {
        _graph.Graph.Output.Add(new ValueInfoProto { Name = output, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementType.Float } } });
        return _graph.Model;
    }
}
