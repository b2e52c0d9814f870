using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Tests.Evaluation;

/// <summary>Generated stacks of Conv 3×3 + Relu (symbolic batch) and .npy data for them: depth is the one thing that varies.</summary>
public static class DeepModels
{
    public const int Channels = 8, Size = 32;

    public static string Write(string dir, int layers, int seed = 1)
    {
        var rng = new Random(seed);
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = $"deep{layers}" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        var g = new OnnxGraph(model);
        var input = new ValueInfoProto { Name = "x", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementType.Float, Shape = new TensorShapeProto() } } };
        input.Type.TensorType.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "batch" });
        foreach (int d in new[] { Channels, Size, Size }) input.Type.TensorType.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        g.Graph.Input.Add(input);
        string x = "x";
        for (int l = 0; l < layers; l++)
        {
            var w = Enumerable.Range(0, Channels * Channels * 9).Select(_ => (float)((rng.NextDouble() * 2 - 1) * 0.4)).ToArray();
            g.AddInitializer(TensorData.FromFloats($"w{l}", [Channels, Channels, 3, 3], w));
            g.AddInitializer(TensorData.FromFloats($"b{l}", [Channels], Enumerable.Range(0, Channels).Select(_ => (float)(rng.NextDouble() * 0.2)).ToArray()));
            g.AddNode(NodeAttributes.Node("Conv", $"conv{l}", [x, $"w{l}", $"b{l}"], [$"c{l}"], NodeAttributes.Ints("pads", [1, 1, 1, 1])));
            string next = l == layers - 1 ? "y" : $"r{l}";
            g.AddNode(NodeAttributes.Node(l == layers - 1 ? "Identity" : "Relu", $"act{l}", [$"c{l}"], [next]));
            x = next;
        }
        g.AddOutput("y");
        string path = Path.Combine(dir, $"deep{layers}.onnx");
        OnnxModelFile.Save(model, path);
        return path;
    }

    /// <summary>One .npy of <paramref name="count"/> N(0,1) samples in a folder of its own.</summary>
    public static string Data(string dir, int count, int seed = 2)
    {
        string folder = Path.Combine(dir, $"data{count}");
        Directory.CreateDirectory(folder);
        var rng = new Random(seed);
        var values = Enumerable.Range(0, count * Channels * Size * Size).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        File.WriteAllBytes(Path.Combine(folder, "samples.npy"), NpyReader.Write(values, [count, Channels, Size, Size]));
        return folder;
    }
}
