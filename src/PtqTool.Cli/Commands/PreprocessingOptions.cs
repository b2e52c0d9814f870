using System.CommandLine;
using System.Globalization;
using PtqTool.Data;
using PtqTool.Pipeline;

namespace PtqTool.Cli.Commands;

/// <summary>The preprocessing flags shared by every command that reads images or audio.</summary>
public sealed class PreprocessingOptions
{
    public Option<string?> Preset { get; } = new("--preprocess") { Description = "Preset: imagenet, fashion-mnist or none (default: the model's sidecar JSON, else guessed from the input shape)" };
    public Option<string?> Size { get; } = new("--size") { Description = "Input size N or WxH" };
    public Option<string?> Crop { get; } = new("--crop") { Description = "Centre-crop size N or WxH after --resize N (the model input size; same as --size)" };
    public Option<string?> Resize { get; } = new("--resize") { Description = "none (images must match), stretch, or N: resize the shorter side to N then centre-crop to --size" };
    public Option<string?> Mean { get; } = new("--mean") { Description = "Per-channel mean after scaling, comma-separated (e.g. 0.485,0.456,0.406)" };
    public Option<string?> Std { get; } = new("--std") { Description = "Per-channel std after scaling, comma-separated" };
    public Option<string?> Layout { get; } = new("--layout") { Description = "nchw or nhwc" };
    public Option<string?> Channels { get; } = new("--channels") { Description = "gray, rgb or bgr" };
    public Option<float?> Scale { get; } = new("--scale") { Description = "Divide pixels by this: 255 (to [0,1]) or 1" };
    public Option<int?> SampleRate { get; } = new("--sample-rate") { Description = ".wav samples: the rate in Hz every file must have (default: the first file's; files are never resampled)" };
    public Option<string> AudioScale { get; } = new("--audio-scale") { Description = ".wav samples: multiply samples on [-1, 1] by this: unit (1, default), int16 (32768: int16-valued floats) or a number", DefaultValueFactory = _ => "unit" };
    public Option<int?> AudioWindow { get; } = new("--audio-window") { Description = ".wav samples: cut each file into windows of N samples (default: the model input's fixed length, else each file whole); a shorter tail is dropped, never padded" };

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { Preset, Size, Crop, Resize, Mean, Std, Layout, Channels, Scale, SampleRate, AudioScale, AudioWindow }) command.Options.Add(o);
    }

    public PreprocessingOverrides Read(ParseResult parse) => new()
    {
        Preset = parse.GetValue(Preset),
        Size = parse.GetValue(Size),
        Crop = parse.GetValue(Crop),
        Resize = parse.GetValue(Resize),
        Mean = Floats(parse.GetValue(Mean), "--mean"),
        Std = Floats(parse.GetValue(Std), "--std"),
        Layout = parse.GetValue(Layout),
        Channels = parse.GetValue(Channels),
        Scale = parse.GetValue(Scale),
        Audio = new AudioFormat(parse.GetValue(SampleRate), AudioFormat.ParseScale(parse.GetValue(AudioScale)!), parse.GetValue(AudioWindow)).Validated(),
    };

    private static float[]? Floats(string? text, string option)
    {
        if (text is null) return null;
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var values = new float[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]))
                throw new PtqException($"{option}: '{parts[i]}' is not a number");
        return values;
    }
}
