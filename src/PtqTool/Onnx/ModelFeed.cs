namespace PtqTool.Onnx;

/// <summary>
/// One batch of model input: a tensor per graph input, by name, all with the same first (batch) dimension. Values are
/// held as float32 whatever the input's element type; <see cref="OrtRunner"/> converts each to the type the model
/// declares when it feeds the run (integer inputs are exact: readers refuse integers beyond ±2^24, see
/// <see cref="ExactIntegerLimit"/>). A tensor without a name (a bare <see cref="FloatTensor"/>) is the model's only input.
/// </summary>
public sealed class ModelFeed
{
    /// <summary>Largest integer magnitude float32 holds exactly; integer inputs (token ids, masks, lengths) stay below it.</summary>
    public const float ExactIntegerLimit = 1 << 24;

    /// <summary>Input names in feed order; null for the model's only input.</summary>
    public IReadOnlyList<string?> Names { get; }
    public IReadOnlyList<FloatTensor> Tensors { get; }

    /// <param name="sameBatch">Check that every tensor has the first one's batch (model inputs); graphs ptq builds
    /// itself (gradient, block graphs) also take weights and targets of other shapes.</param>
    public ModelFeed(IReadOnlyList<string?> names, IReadOnlyList<FloatTensor> tensors, bool sameBatch = true)
    {
        if (names.Count != tensors.Count || tensors.Count == 0) throw new ArgumentException("a feed needs one name per tensor, at least one");
        int batch = tensors[0].Batch;
        for (int i = 1; i < tensors.Count && sameBatch; i++)
            if (tensors[i].Batch != batch)
                throw new PtqException($"input '{names[i]}' holds {tensors[i].Batch} samples, input '{names[0]}' {batch}: every input of a batch needs the same first dimension");
        Names = names;
        Tensors = tensors;
    }

    public static implicit operator ModelFeed(FloatTensor single) => new([null], [single]);

    public int Batch => Tensors[0].Batch;

    /// <summary>The tensor fed to <paramref name="name"/>, or the only tensor when it has no name.</summary>
    public FloatTensor this[string name]
    {
        get
        {
            for (int i = 0; i < Names.Count; i++) if (Names[i] == name || Names[i] is null) return Tensors[i];
            throw new PtqException($"the feed has no input '{name}'");
        }
    }

    /// <summary>Samples [start, start+count) of every input.</summary>
    public ModelFeed Slice(int start, int count) => new(Names, Tensors.Select(t => t.Slice(start, count)).ToList());

    /// <summary>The samples in the tensor fed to <paramref name="input"/> (for feeds whose tensors differ in batch).</summary>
    public int BatchOf(string input) => this[input].Batch;

    /// <summary>Joins feeds of the same inputs and per-sample shapes along the batch dimension.</summary>
    public static ModelFeed Concat(IReadOnlyList<ModelFeed> parts)
    {
        if (parts.Count == 1) return parts[0];
        return new ModelFeed(parts[0].Names, Enumerable.Range(0, parts[0].Tensors.Count).Select(i => FloatTensor.Concat(parts.Select(p => p.Tensors[i]).ToList())).ToList());
    }

    /// <summary>Every input's per-sample shape, e.g. "input_ids[128] attention_mask[128]": feeds with equal keys batch together.</summary>
    public string ShapeKey => string.Join(' ', Names.Select((n, i) => $"{n}[{string.Join(',', Tensors[i].Shape.Skip(1))}]"));

    public override string ToString() => Tensors.Count == 1 ? Tensors[0].ToString() : string.Join(", ", Names.Select((n, i) => $"{n} {Tensors[i]}"));
}
