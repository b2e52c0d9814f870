using PtqTool.Onnx;

namespace PtqTool.Data;

/// <summary>
/// How .wav files become model input (--sample-rate, --audio-scale, --audio-window).
/// </summary>
/// <param name="SampleRate">Rate every file must have; null: the first file's rate, which every other file must share.</param>
/// <param name="Scale">Samples on [-1, 1] are multiplied by this (32768 gives int16-valued floats, as openWakeWord's melspectrogram takes).</param>
/// <param name="Window">Samples per model sample; null: the model's fixed length, else each file whole.</param>
public sealed record AudioFormat(int? SampleRate = null, float Scale = 1f, int? Window = null)
{
    /// <summary>Reads --audio-scale: a positive number, or "unit" (1) or "int16" (32768).</summary>
    public static float ParseScale(string text) => text switch
    {
        "unit" => 1f,
        "int16" => 32768f,
        _ when float.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out float v) && v > 0 && float.IsFinite(v) => v,
        _ => throw new PtqException($"--audio-scale: '{text}' is not unit, int16 or a positive number"),
    };

    public AudioFormat Validated()
    {
        if (SampleRate is < 1 or > 1_000_000) throw new PtqException($"--sample-rate: {SampleRate} is out of range (1..1000000 Hz)");
        if (Window is < 1) throw new PtqException($"--audio-window: {Window} must be at least 1 sample");
        return this;
    }
}

/// <summary>
/// The model input that takes raw audio: one float input shaped [batch, samples] or [batch, 1, samples]. A .wav file
/// becomes consecutive windows of the model's fixed length (or --audio-window); a remainder shorter than a window is
/// dropped and counted, never padded. With neither, each file is one sample of its own length, batched with files of
/// equal length by the reader.
/// </summary>
public sealed class AudioInput
{
    private readonly InputSpec _input;
    private readonly AudioFormat _format;
    private readonly int? _window;
    private readonly System.Runtime.CompilerServices.StrongBox<int?> _rate;

    /// <summary>Samples dropped from the ends of files, past their last whole window.</summary>
    public long DroppedSamples { get; private set; }
    /// <summary>Files that had samples dropped.</summary>
    public int FilesWithDrops { get; private set; }

    private AudioInput(InputSpec input, AudioFormat format, int? window, System.Runtime.CompilerServices.StrongBox<int?>? rate)
    {
        _input = input;
        _format = format;
        _window = window;
        _rate = rate ?? new();
        _rate.Value ??= format.SampleRate;
    }

    /// <summary>Whether an input is shaped for raw audio: float, [batch, samples] or [batch, 1, samples].</summary>
    public static bool Takes(InputSpec input) =>
        input.IsFloat && (input.DeclaredShape.Length == 2 || (input.DeclaredShape.Length == 3 && input.DeclaredShape[1] == 1));

    /// <summary>The audio input of a model with these inputs, or an error naming the file that needs one.</summary>
    /// <param name="rate">Shared by the readers of one run (calibration and evaluation), so that the first file's rate
    /// holds for every folder; null: this reader's own.</param>
    public static AudioInput For(IReadOnlyList<InputSpec> inputs, AudioFormat format, string file, System.Runtime.CompilerServices.StrongBox<int?>? rate = null)
    {
        if (inputs.Count != 1 || !Takes(inputs[0]))
            throw new PtqException($"{file}: a .wav sample, but the model's input{(inputs.Count == 1 ? "" : "s")} {string.Join(", ", inputs.Select(i => $"'{i.Name}' {i.TypeName} {i.ShapeText}"))} do{(inputs.Count == 1 ? "es" : "")} not take raw audio (one float input [batch, samples] or [batch, 1, samples])");
        var input = inputs[0];
        format = format.Validated();
        int length = input.DeclaredShape[^1];
        if (length > 0 && format.Window is int w && w != length)
            throw new PtqException($"--audio-window: {w} samples, but the model's input '{input.Name}' {input.ShapeText} takes {length}");
        return new AudioInput(input, format, length > 0 ? length : format.Window, rate);
    }

    /// <summary>One file's samples as a feed: [windows, (1,) window] or [1, (1,) length].</summary>
    public ModelFeed Feed(WavAudio audio, string path)
    {
        _rate.Value ??= audio.SampleRate;
        if (audio.SampleRate != _rate.Value)
            throw new PtqException(_format.SampleRate is null
                ? $"{path}: sampled at {audio.SampleRate} Hz, the first file at {_rate.Value} Hz; resample the files to one rate (and name it with --sample-rate)"
                : $"{path}: sampled at {audio.SampleRate} Hz; --sample-rate says {_rate.Value} Hz (resample it first)");
        var samples = audio.Samples;
        int window = _window ?? samples.Length;
        int count = samples.Length / window;
        if (count == 0)
            throw new PtqException($"{path}: {samples.Length} samples, shorter than one window of {window} (the model's input '{_input.Name}' {_input.ShapeText}{(_format.Window is null ? "" : ", --audio-window")})");
        int rest = samples.Length - count * window;
        if (rest > 0) { DroppedSamples += rest; FilesWithDrops++; }
        var data = new float[(long)count * window];
        for (int i = 0; i < data.Length; i++) data[i] = samples[i] * _format.Scale;
        int[] shape = _input.DeclaredShape.Length == 3 ? [count, 1, window] : [count, window];
        return new FloatTensor(data, shape);
    }

    /// <summary>A note on what was dropped, or null.</summary>
    public string? DropNote() => FilesWithDrops == 0 ? null
        : $"note: {DroppedSamples} samples at the ends of {FilesWithDrops} .wav file(s) were shorter than a window of {_window} and dropped (not padded)";
}
