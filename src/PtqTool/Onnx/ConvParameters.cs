using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>A Conv's bias as floats, and new weight and bias initializers put in place of its own (for the folds that rewrite them).</summary>
public static class ConvParameters
{
    /// <summary>The Conv's bias, or zeros when it has none.</summary>
    public static float[] Bias(OnnxGraph graph, NodeProto conv, int channels) =>
        conv.Input.Count > 2 && conv.Input[2].Length > 0 ? graph.InitializerFloats(conv.Input[2]) : new float[channels];

    /// <summary>
    /// Gives the Conv new weight and bias initializers, named after the old weight and the Conv (else
    /// <paramref name="fallbackName"/>) with <paramref name="suffix"/>; the old ones go when nothing else reads them.
    /// </summary>
    public static void Replace(OnnxGraph graph, NodeProto conv, float[] weights, float[] bias, string suffix, string fallbackName)
    {
        var w = graph.Initializer(conv.Input[1])!;
        string wName = graph.UniqueName(conv.Input[1] + "_" + suffix);
        string bName = graph.UniqueName((conv.Name.Length > 0 ? conv.Name : fallbackName) + "_bias_" + suffix);
        graph.AddInitializer(TensorData.FromFloats(wName, TensorData.Shape(w), weights));
        graph.AddInitializer(TensorData.FromFloats(bName, [bias.Length], bias));
        string oldWeight = conv.Input[1];
        string? oldBias = conv.Input.Count > 2 && conv.Input[2].Length > 0 ? conv.Input[2] : null;
        conv.Input[1] = wName;
        if (conv.Input.Count > 2) conv.Input[2] = bName; else conv.Input.Add(bName);
        BatchNormFolding.RemoveIfUnused(graph, oldWeight);
        if (oldBias is not null) BatchNormFolding.RemoveIfUnused(graph, oldBias);
    }
}
