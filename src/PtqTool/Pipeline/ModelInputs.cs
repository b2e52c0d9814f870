using PtqTool.Data;
using PtqTool.Onnx;

namespace PtqTool.Pipeline;

/// <summary>The model's data inputs as its ONNX Runtime session declares them, and the per-sample shape of an image input.</summary>
public static class ModelInputs
{
    public static List<InputSpec> Of(OrtRunner runner) =>
        runner.InputNames.Select(n => new InputSpec(n, (int)runner.InputElementType(n), runner.InputShape(n))).ToList();

    /// <summary>
    /// Whether samples are named multi-input files (.npz, .pb folders): several inputs, or one that is not float.
    /// Otherwise the one float input takes images or bare tensors.
    /// </summary>
    public static bool Named(IReadOnlyList<InputSpec> inputs) => inputs.Count != 1 || !inputs[0].IsFloat;

    /// <summary>
    /// Whether samples go through image preprocessing (a sidecar then records it): a single float input, unless it
    /// takes raw audio of a symbolic length (.wav files give each sample its length; there is no image to preprocess).
    /// </summary>
    public static bool Preprocessed(IReadOnlyList<InputSpec> inputs) =>
        !Named(inputs) && !(AudioInput.Takes(inputs[0]) && inputs[0].DeclaredShape[^1] <= 0);

    /// <summary>The per-sample shape of a single input: from the model where it is fixed, else from preprocessing (images).</summary>
    public static int[] SampleShape(InputSpec input, Preprocessing p, string modelPath)
    {
        var declared = input.DeclaredShape.Skip(1).ToArray();
        if (declared.All(d => d > 0))
        {
            return declared;
        }
        var fromPre = p.SampleShape;
        if (fromPre.Length != declared.Length)
            throw new PtqException($"{modelPath}: input '{input.Name}' has rank {input.DeclaredShape.Length}; preprocessing gives rank {fromPre.Length + 1}");
        return declared.Select((d, i) => d > 0 ? d : fromPre[i]).ToArray();
    }

    /// <summary>
    /// The preprocessing and per-sample shape of these inputs: resolved for a single float input (images, tensors);
    /// none and empty for named samples, which are fed as they are.
    /// </summary>
    public static (Preprocessing Preprocessing, int[] SampleShape) Resolve(IReadOnlyList<InputSpec> inputs, string modelPath, PreprocessingOverrides overrides)
    {
        if (Named(inputs)) return (new Preprocessing(), []);
        if (!Preprocessed(inputs)) return (new Preprocessing(), inputs[0].DeclaredShape.Skip(1).ToArray());
        var p = PreprocessingResolver.Resolve(modelPath, inputs[0].DeclaredShape, overrides);
        return (p, SampleShape(inputs[0], p, modelPath));
    }

    /// <summary>The batch reader for these inputs: named samples, .wav audio, or images/tensors for a single float input.</summary>
    /// <param name="audioRate">The sample rate shared by every reader of one run (see <see cref="AudioInput.For"/>).</param>
    public static BatchReader Reader(IReadOnlyList<InputSpec> inputs, IReadOnlyList<SampleFile> files, Preprocessing p, int[] sampleShape, int batch, AudioFormat? audio = null,
        System.Runtime.CompilerServices.StrongBox<int?>? audioRate = null) =>
        files.FirstOrDefault(f => SampleFolder.IsAudio(f.Path)) is { } wav ? new BatchReader(files, AudioInput.For(inputs, audio ?? new AudioFormat(), wav.Path, audioRate), batch)
        : Named(inputs) ? new BatchReader(files, inputs, batch)
        : new BatchReader(files, p, sampleShape, batch);
}
