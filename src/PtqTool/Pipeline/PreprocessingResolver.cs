using PtqTool.Data;

namespace PtqTool.Pipeline;

/// <summary>Preprocessing flags as given on the command line; null means "not given".</summary>
public sealed record PreprocessingOverrides
{
    public string? Preset { get; init; }
    public string? Size { get; init; }
    /// <summary>Centre-crop size after a shorter-side resize; the model input size, so it sets the same as --size.</summary>
    public string? Crop { get; init; }
    public string? Resize { get; init; }
    public float[]? Mean { get; init; }
    public float[]? Std { get; init; }
    public string? Layout { get; init; }
    public string? Channels { get; init; }
    public float? Scale { get; init; }
    /// <summary>How .wav samples become input (--sample-rate, --audio-scale, --audio-window).</summary>
    public AudioFormat Audio { get; init; } = new();
}

/// <summary>
/// Decides a model's preprocessing: a preset if one is named, else the model's sidecar JSON, else a guess from the
/// input shape (NCHW with 1 or 3 channels, [0,1] pixels); explicit flags override any of these.
/// </summary>
public static class PreprocessingResolver
{
    public static Preprocessing Resolve(string modelPath, int[] inputShape, PreprocessingOverrides o)
    {
        Preprocessing p;
        if (o.Preset is not null) p = Preprocessing.Preset(o.Preset);
        else if (Preprocessing.LoadSidecar(modelPath) is { } sidecar) p = sidecar;
        else
        {
            p = FromShape(inputShape);
            // A guessed size for a model with symbolic height/width would silently feed it 224×224 images.
            if (o.Size is null && o.Crop is null && SpatialIsSymbolic(inputShape))
                throw new PtqException($"{modelPath}: input [{string.Join(", ", inputShape.Select(d => d > 0 ? d.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?"))}] has a symbolic height/width; give --size WxH (or a sidecar {Path.GetFileName(Preprocessing.SidecarPath(modelPath))}, or --preprocess)");
        }

        if (o.Size is not null)
        {
            var (w, h) = ParseSize(o.Size);
            p = p with { Width = w, Height = h };
        }
        if (o.Crop is not null)
        {
            if (o.Size is not null && o.Size != o.Crop) throw new PtqException($"--crop {o.Crop} and --size {o.Size} disagree (the crop is the model input size)");
            var (w, h) = ParseSize(o.Crop);
            p = p with { Width = w, Height = h };
        }
        if (o.Resize is not null) p = p with { Resize = o.Resize };
        if (o.Mean is not null) p = p with { Mean = o.Mean };
        if (o.Std is not null) p = p with { Std = o.Std };
        if (o.Layout is not null) p = p with { Layout = o.Layout };
        if (o.Channels is not null) p = p with { Channels = o.Channels };
        if (o.Scale is not null) p = p with { Scale = o.Scale.Value };
        return p.Validated();
    }

    /// <summary>"224" or "224x224" (width x height).</summary>
    public static (int Width, int Height) ParseSize(string text)
    {
        var parts = text.ToLowerInvariant().Split('x');
        if (parts.Length is 1 or 2 && int.TryParse(parts[0], out int w) && w > 0)
        {
            int h = w;
            if (parts.Length == 1 || (int.TryParse(parts[1], out h) && h > 0)) return (w, h);
        }
        throw new PtqException($"--size: '{text}' is not N or WxH with positive integers");
    }

    private static Preprocessing FromShape(int[] shape)
    {
        if (shape.Length == 4 && shape[1] is 1 or 3)
            return new Preprocessing { Channels = shape[1] == 1 ? "gray" : "rgb", Layout = "nchw", Height = Pos(shape[2], 224), Width = Pos(shape[3], 224), Resize = "stretch" };
        if (shape.Length == 4 && shape[3] is 1 or 3)
            return new Preprocessing { Channels = shape[3] == 1 ? "gray" : "rgb", Layout = "nhwc", Height = Pos(shape[1], 224), Width = Pos(shape[2], 224), Resize = "stretch" };
        return new Preprocessing();
    }

    private static int Pos(int d, int fallback) => d > 0 ? d : fallback;

    private static bool SpatialIsSymbolic(int[] shape) =>
        shape.Length == 4 && ((shape[1] is 1 or 3 && (shape[2] <= 0 || shape[3] <= 0)) || (shape[3] is 1 or 3 && (shape[1] <= 0 || shape[2] <= 0)));
}
