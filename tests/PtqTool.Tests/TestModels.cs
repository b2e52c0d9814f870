using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Tests;

/// <summary>Small hand-built ONNX graphs for tests.</summary>
public static class TestModels
{
    /// <summary>An empty opset-13 model whose graph has one float input "x" of a fixed shape.</summary>
    public static (ModelProto Model, OnnxGraph Graph) WithFloatInput(string name, int[] inputShape)
    {
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = name } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        var g = new OnnxGraph(model);
        var input = new ValueInfoProto { Name = "x", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementType.Float, Shape = new TensorShapeProto() } } };
        foreach (int d in inputShape) input.Type.TensorType.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        g.Graph.Input.Add(input);
        return (model, g);
    }
}
