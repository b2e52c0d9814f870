using Google.Protobuf;
using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>Reads and writes .onnx files: clear errors for missing, truncated or non-ONNX files, external data on save, atomic writes.</summary>
public static class OnnxModelFile
{
    /// <summary>Parses a model. Tensors stored as external data stay external; read them with <see cref="TensorData"/> and the model's directory.</summary>
    public static ModelProto Load(string path)
    {
        if (!File.Exists(path))
            throw new PtqException($"{path}: file not found");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PtqException($"{path}: cannot read file ({e.Message})", inner: e);
        }
        return Parse(bytes, path);
    }

    public static ModelProto Parse(byte[] bytes, string nameForErrors)
    {
        if (bytes.Length == 0)
            throw new PtqException($"{nameForErrors}: file is empty, not an ONNX model");
        ModelProto model;
        try { model = ModelProto.Parser.ParseFrom(bytes); }
        catch (InvalidProtocolBufferException e)
        {
            string what = e.Message.Contains("truncated", StringComparison.OrdinalIgnoreCase)
                ? $"file is truncated or corrupt (the protobuf data ends in the middle of a field after {bytes.Length} bytes)"
                : "not an ONNX model (it does not parse as an ONNX protobuf)";
            throw new PtqException($"{nameForErrors}: {what}", inner: e);
        }
        if (!model.HasIrVersion || model.Graph is null || model.OpsetImport.Count == 0)
            throw new PtqException($"{nameForErrors}: not an ONNX model (no ir_version, graph or opset_import)");
        return model;
    }

    /// <summary>
    /// Saves atomically. Tensors that were external in <paramref name="sourceDirectory"/> are read and written again
    /// as external data in "&lt;file name&gt;.data" beside the output, so the saved model is self-contained.
    /// </summary>
    public static void Save(ModelProto model, string path, string? sourceDirectory = null)
    {
        ModelProto toWrite = model;
        if (HasExternalData(model))
        {
            toWrite = model.Clone();
            string dataName = Path.GetFileName(path) + ".data";
            string dataPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, dataName);
            var rewritten = new List<(TensorProto Tensor, byte[] Bytes)>();
            foreach (var tensor in AllTensors(toWrite.Graph))
            {
                if (tensor.DataLocation != TensorProto.Types.DataLocation.External) continue;
                rewritten.Add((tensor, TensorData.ReadExternalBytes(tensor, sourceDirectory ?? ".")));
            }
            AtomicFile.Write(dataPath, stream =>
            {
                foreach (var (tensor, data) in rewritten)
                {
                    long offset = stream.Position;
                    stream.Write(data);
                    tensor.ExternalData.Clear();
                    tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataName });
                    tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                    tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = data.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                }
            });
        }
        AtomicFile.WriteAllBytes(path, toWrite.ToByteArray());
    }

    /// <summary>Moves every initializer of at least <paramref name="minBytes"/> into an external data file beside <paramref name="path"/>.</summary>
    public static void SaveWithExternalData(ModelProto model, string path, int minBytes = 1024)
    {
        var copy = model.Clone();
        string dataName = Path.GetFileName(path) + ".data";
        string dataPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, dataName);
        AtomicFile.Write(dataPath, stream =>
        {
            foreach (var tensor in copy.Graph.Initializer)
            {
                if (tensor.DataLocation == TensorProto.Types.DataLocation.External || !tensor.HasRawData || tensor.RawData.Length < minBytes) continue;
                long offset = stream.Position;
                tensor.RawData.WriteTo(stream);
                tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataName });
                tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = tensor.RawData.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                tensor.DataLocation = TensorProto.Types.DataLocation.External;
                tensor.ClearRawData();
            }
        });
        AtomicFile.WriteAllBytes(path, copy.ToByteArray());
    }

    /// <summary>Replaces every external tensor by its data inline, so the model can be handed to ONNX Runtime as bytes.</summary>
    public static void InlineExternalData(ModelProto model, string sourceDirectory)
    {
        foreach (var tensor in AllTensors(model.Graph))
        {
            if (tensor.DataLocation != TensorProto.Types.DataLocation.External) continue;
            byte[] data = TensorData.ReadExternalBytes(tensor, sourceDirectory);
            tensor.ExternalData.Clear();
            tensor.ClearDataLocation();
            tensor.RawData = ByteString.CopyFrom(data);
        }
    }

    public static bool HasExternalData(ModelProto model) =>
        AllTensors(model.Graph).Any(t => t.DataLocation == TensorProto.Types.DataLocation.External);

    /// <summary>Initializers and tensor-valued attributes, including those of subgraphs.</summary>
    public static IEnumerable<TensorProto> AllTensors(GraphProto graph)
    {
        foreach (var t in graph.Initializer) yield return t;
        foreach (var node in graph.Node)
        {
            foreach (var a in node.Attribute)
            {
                if (a.T is not null) yield return a.T;
                foreach (var t in a.Tensors) yield return t;
                if (a.G is not null)
                    foreach (var t in AllTensors(a.G)) yield return t;
                foreach (var g in a.Graphs)
                    foreach (var t in AllTensors(g)) yield return t;
            }
        }
    }
}
