using PtqTool.Onnx;

namespace PtqTool.Data;

/// <summary>Reads one multi-input sample file into a feed: an .npz keyed by input name, or a folder of TensorProto .pb files, one per input.</summary>
public static class NamedInputs
{
    public static ModelFeed Read(string path, IReadOnlyList<InputSpec> inputs)
    {
        var arrays = Directory.Exists(path) ? ReadTensorProtos(path) : NpzReader.Read(path);
        foreach (var key in arrays.Keys)
            if (!inputs.Any(i => i.Name == key))
                throw new PtqException($"{path}: holds '{key}', which is not an input of the model (its inputs: {string.Join(", ", inputs.Select(i => i.Name))})");
        var tensors = new List<FloatTensor>(inputs.Count);
        foreach (var input in inputs)
        {
            if (!arrays.TryGetValue(input.Name, out var array))
                throw new PtqException($"{path}: lacks input '{input.Name}' ({input.TypeName} {input.ShapeText})");
            tensors.Add(input.Take(array, path));
        }
        for (int i = 1; i < tensors.Count; i++)
            if (tensors[i].Batch != tensors[0].Batch)
                throw new PtqException($"{path}: input '{inputs[i].Name}' holds {tensors[i].Batch} sample(s), input '{inputs[0].Name}' {tensors[0].Batch}");
        return new ModelFeed(inputs.Select(i => (string?)i.Name).ToList(), tensors);
    }

    /// <summary>A folder's .pb TensorProtos (ONNX's test_data_set layout), each keyed by its name field, else its file name.</summary>
    private static Dictionary<string, NpyArray> ReadTensorProtos(string folder)
    {
        var arrays = new Dictionary<string, NpyArray>(StringComparer.Ordinal);
        foreach (var file in Directory.GetFiles(folder, "*.pb").Order(StringComparer.Ordinal))
        {
            Onnx.Proto.TensorProto t;
            try { t = Onnx.Proto.TensorProto.Parser.ParseFrom(File.ReadAllBytes(file)); }
            catch (Google.Protobuf.InvalidProtocolBufferException e) { throw new PtqException($"{file}: not an ONNX TensorProto ({e.Message})", inner: e); }
            string key = t.Name.Length > 0 ? t.Name : Path.GetFileNameWithoutExtension(file);
            string kind = InputSpec.KindOf(t.DataType, file);
            var data = TensorData.ToFloats(t, folder);
            // On the exact values: float32 would round 2^24 + 1 to 2^24, which passes.
            if (kind[0] is 'i' or 'u' && TensorData.ToInt64s(t, folder).Any(v => Math.Abs(v) > (long)ModelFeed.ExactIntegerLimit))
                throw new PtqException($"{file}: holds integers beyond ±2^24 (ptq holds inputs as float32, exact only to there)");
            if (!arrays.TryAdd(key, new NpyArray(data, TensorData.Shape(t), kind)))
                throw new PtqException($"{file}: a second tensor for input '{key}' in {folder}");
        }
        if (arrays.Count == 0) throw new PtqException($"{folder}: holds no .pb tensors");
        return arrays;
    }
}
