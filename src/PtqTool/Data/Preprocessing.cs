using System.Text.Json;
using System.Text.Json.Serialization;

namespace PtqTool.Data;

/// <summary>
/// How an image becomes a model input: decode → (optional) resize of the shorter side → centre crop or stretch to
/// Width×Height → channels → divide by Scale → (x − mean)/std per channel → NCHW or NHWC.
/// </summary>
public sealed record Preprocessing
{
    public int Width { get; init; } = 224;
    public int Height { get; init; } = 224;
    /// <summary>gray, rgb or bgr.</summary>
    public string Channels { get; init; } = "rgb";
    /// <summary>nchw or nhwc.</summary>
    public string Layout { get; init; } = "nchw";
    /// <summary>Pixels are divided by this (255 maps to [0,1]; 1 keeps [0,255]).</summary>
    public float Scale { get; init; } = 255f;
    public float[] Mean { get; init; } = [0f];
    public float[] Std { get; init; } = [1f];
    /// <summary>"none": image must already be Width×Height; "stretch": resize to it; a number N: resize the shorter side to N, then centre-crop.</summary>
    public string Resize { get; init; } = "stretch";

    public int ChannelCount => Channels == "gray" ? 1 : 3;

    /// <summary>The mean of channel c (one value serves every channel).</summary>
    public float MeanOf(int c) => Mean[Mean.Length == 1 ? 0 : c];

    /// <summary>The std of channel c (one value serves every channel).</summary>
    public float StdOf(int c) => Std[Std.Length == 1 ? 0 : c];

    public int[] SampleShape => Layout == "nhwc" ? [Height, Width, ChannelCount] : [ChannelCount, Height, Width];

    /// <summary>The model-input range of pixel values 0..255 per channel (NCHW channel order), for projecting synthetic inputs.</summary>
    public (float[] Lo, float[] Hi) InputRange()
    {
        var lo = new float[ChannelCount];
        var hi = new float[ChannelCount];
        for (int c = 0; c < ChannelCount; c++)
        {
            lo[c] = (0 / Scale - MeanOf(c)) / StdOf(c);
            hi[c] = (255 / Scale - MeanOf(c)) / StdOf(c);
        }
        return (lo, hi);
    }

    public static Preprocessing ImageNet => new()
    {
        Width = 224, Height = 224, Channels = "rgb", Layout = "nchw", Scale = 255f,
        Mean = [0.485f, 0.456f, 0.406f], Std = [0.229f, 0.224f, 0.225f], Resize = "256",
    };

    public static Preprocessing FashionMnist => new()
    {
        Width = 28, Height = 28, Channels = "gray", Layout = "nchw", Scale = 255f, Mean = [0.2860f], Std = [0.3530f], Resize = "none",
    };

    public static Preprocessing None => new() { Scale = 1f, Mean = [0f], Std = [1f], Resize = "stretch" };

    public static Preprocessing Preset(string name) => name switch
    {
        "imagenet" => ImageNet,
        "fashion-mnist" => FashionMnist,
        "none" => None,
        _ => throw new PtqException($"--preprocess: unknown preset '{name}' (expected imagenet, fashion-mnist or none)"),
    };

    /// <summary>Checks ranges; throws a one-line error naming the offending setting.</summary>
    public Preprocessing Validated()
    {
        if (Width <= 0 || Height <= 0) throw new PtqException($"--size: {Width}x{Height} is not a positive size");
        if (Channels is not ("gray" or "rgb" or "bgr")) throw new PtqException($"--channels: '{Channels}' is not gray, rgb or bgr");
        if (Layout is not ("nchw" or "nhwc")) throw new PtqException($"--layout: '{Layout}' is not nchw or nhwc");
        if (!(Scale > 0)) throw new PtqException($"--scale: {Scale} must be positive");
        if (Mean.Length != 1 && Mean.Length != ChannelCount) throw new PtqException($"--mean: {Mean.Length} values for {ChannelCount} channel(s)");
        if (Std.Length != 1 && Std.Length != ChannelCount) throw new PtqException($"--std: {Std.Length} values for {ChannelCount} channel(s)");
        if (Std.Any(s => !(s > 0))) throw new PtqException("--std: every value must be positive");
        if (Resize is not ("none" or "stretch") && !(int.TryParse(Resize, out int r) && r > 0))
            throw new PtqException($"--resize: '{Resize}' is not none, stretch or a positive shorter-side length");
        return this;
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
        ReadCommentHandling = JsonCommentHandling.Skip,
    };

    /// <summary>
    /// This preprocessing as sidecar JSON for a quantized model, so `ptq eval` on it reads its inputs the same way; the
    /// source sidecar's other keys (labels, description) are kept.
    /// </summary>
    public string SidecarJson(string sourceModel)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(JsonSerializer.Serialize(this, JsonOptions))!.AsObject();
        string source = SidecarPath(sourceModel);
        if (File.Exists(source))
        {
            try
            {
                if (System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(source)) is System.Text.Json.Nodes.JsonObject old)
                    foreach (var (key, value) in old)
                        if (!node.ContainsKey(key)) node[key] = value?.DeepClone();
            }
            catch (JsonException) { }
        }
        node["written_by"] = $"ptq quantize from {Path.GetFileName(sourceModel)}";
        return node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    private static readonly string[] SidecarKeys = ["width", "height", "channels", "layout", "scale", "mean", "std", "resize"];

    /// <summary>The sidecar of a model: "model.json" beside "model.onnx", when it exists.</summary>
    public static string SidecarPath(string modelPath) => Path.ChangeExtension(modelPath, ".json");

    /// <summary>
    /// The preprocessing in a model's sidecar JSON (models/NAME.json: snake_case keys width, height, channels, layout,
    /// scale, mean, std, resize; other keys such as description and labels are documentation and ignored), or null.
    /// </summary>
    public static Preprocessing? LoadSidecar(string modelPath)
    {
        string path = SidecarPath(modelPath);
        if (!File.Exists(path)) return null;
        try
        {
            string text = File.ReadAllText(path);
            // A JSON file beside the model that names no preprocessing setting (a report, say) is not a sidecar.
            if (System.Text.Json.Nodes.JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip }) is not System.Text.Json.Nodes.JsonObject o
                || !SidecarKeys.Any(o.ContainsKey))
                return null;
            return JsonSerializer.Deserialize<Preprocessing>(text, JsonOptions)
                ?? throw new PtqException($"{path}: empty sidecar");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PtqException($"{path}: cannot read the sidecar ({e.Message})", inner: e);
        }
        catch (JsonException e)
        {
            throw new PtqException($"{path}: invalid sidecar JSON ({e.Message})", inner: e);
        }
    }
}
