using System.CommandLine;
using PtqTool.Pipeline;
using PtqTool.Rewrite;

namespace PtqTool.Cli.Commands;

/// <summary>Which of the shared options a command takes (its --help lists only those).</summary>
public enum OptionScope
{
    /// <summary>quantize, sensitivity: everything.</summary>
    Quantize,
    /// <summary>calibrate: data and the choices that decide which tensors are observed (--exclude, --symmetric-activations).</summary>
    Calibrate,
    /// <summary>sweep: data and quantization choices except the loss and bit widths, which the sweep sets itself.</summary>
    Sweep,
    /// <summary>distill: the model, threads, progress and preprocessing only.</summary>
    Distill,
}

/// <summary>Options shared by `quantize`, `calibrate`, `sweep`, `sensitivity` and `distill`: data, batching, quantization choices, preprocessing.</summary>
public sealed class QuantizationOptionSet(OptionScope scope = OptionScope.Quantize)
{
    private readonly HashSet<Option> _added = [];

    public Argument<string> Model { get; } = new("model") { Description = "FP32 ONNX model" };
    public Option<string?> Calib { get; } = new("--calib") { Description = "Calibration folder: images (jpg/png/bmp/webp/gif, recursive), .npy or TensorProto .pb files" };
    public Option<string?> CalibText { get; } = new("--calib-text") { Description = "Calibration sentences for a BERT-class encoder: a text file, one a line (with --vocab)" };
    public Option<string?> Vocab { get; } = new("--vocab") { Description = "WordPiece vocab.txt that tokenizes --calib-text/--eval-text into input_ids, attention_mask, token_type_ids" };
    public Option<int?> SeqLen { get; } = new("--seq-len") { Description = "Pad and truncate sentences to N tokens (default: each sentence its own length, batched with equal lengths)" };
    public Option<bool> Cased { get; } = new("--cased") { Description = "Keep case when tokenizing (cased vocabularies); uncased (lowercased) by default" };
    public Option<int?> Limit { get; } = new("--limit") { Description = "Use at most N calibration samples (spread evenly over the folder)" };
    public Option<int> Batch { get; } = new("--batch") { Description = "Batch size", DefaultValueFactory = _ => 32 };
    public Option<bool> Strict { get; } = new("--strict") { Description = "Stop on an unreadable image or an op without a handler instead of skipping/keeping it in float" };
    public Option<int> Threads { get; } = new("--threads") { Description = "Threads (0 = one per core): ONNX Runtime intra-op threads; calibration runs this many single-threaded batches at once", DefaultValueFactory = _ => 0 };
    public Option<int> MemoryBudget { get; } = new("--memory-budget") { Description = "MiB of intermediate tensors one calibration or per-layer run may fetch at once (more passes when exceeded)", DefaultValueFactory = _ => 256 };
    public Option<bool> Quiet { get; } = new("--quiet") { Description = "No progress or notes on stderr (warnings and errors still show)" };
    public Option<string> Loss { get; } = new("--loss") { Description = "Scale choice: minmax, percentile, entropy, msqe or qsin", DefaultValueFactory = _ => "msqe" };
    public Option<string?> WeightLoss { get; } = new("--weight-loss") { Description = "Loss for weights (default: --loss; minmax when --loss is entropy)" };
    public Option<double> Percentile { get; } = new("--percentile") { Description = "Percentile for --loss percentile", DefaultValueFactory = _ => 99.99 };
    public Option<int?> Bits { get; } = new("--bits") { Description = "Bit width of weights and activations (sets both; 2..8)" };
    public Option<int?> WeightBits { get; } = new("--weight-bits") { Description = "Weight bit width (2..8, default 8)" };
    public Option<int?> ActivationBits { get; } = new("--activation-bits") { Description = "Activation bit width (2..8, default 8)" };
    public Option<string> ActivationType { get; } = new("--activation-type") { Description = "uint8 (default; what ONNX Runtime fuses on x86) or int8", DefaultValueFactory = _ => "uint8" };
    public Option<bool> SymmetricActivations { get; } = new("--symmetric-activations") { Description = "Zero point fixed at the middle (keeps Relu nodes)" };
    public Option<string> WeightStorage { get; } = new("--weight-storage") { Description = "int8 (default) or int4: weights with 4-bit codes stored two per byte at opset 21 (smaller file; ONNX Runtime 1.32 runs them in float)", DefaultValueFactory = _ => "int8" };
    public Option<bool> PerTensorWeights { get; } = new("--per-tensor-weights") { Description = "One scale per weight tensor instead of per output channel" };
    public Option<string> EmbeddingBits { get; } = new("--embedding-bits") { Description = "Embedding tables (Gather of a constant [rows, columns] table by token ids) as com.microsoft GatherBlockQuantized: 8, 4 or off (default: 4 with --weight-storage int4, 8 otherwise; docs/transformers.md)", DefaultValueFactory = _ => "auto" };
    public Option<string?> Int4Rounding { get; } = new("--int4-rounding") { Description = "MatMulNBits weights (--weight-storage int4): nearest, or gptq (error spread through the MatMul input's Gram, from calibration samples); default gptq where calibration samples are given (docs/transformers.md)" };
    public Option<bool> Equalize { get; } = new("--equalize") { Description = "Cross-layer equalization of Conv -> (Relu) -> Conv weight ranges before calibration (the float model's function is unchanged; off by default; docs/accuracy.md)" };
    public Option<bool> KeepAffine { get; } = new("--keep-affine") { Description = "Keep Mul/Add nodes by constants beside a Conv as quantized nodes of their own instead of folding them into it (folding is exact; docs/real-models.md)" };
    public Option<string> OutputBiasCorrection { get; } = new("--output-bias-correction") { Description = "Empirical bias correction on the quantized model: on moves each Conv's int32 bias by the per-channel mean of its output error against FP32 on calibration samples, Convs in order of depth, and keeps the result only if the output loss falls (on, the default, where calibration samples are given); off keeps the rewrite's biases (docs/accuracy.md)", DefaultValueFactory = _ => "on" };
    public Option<bool> BiasCorrection { get; } = new("--bias-correction") { Description = "Correct Conv/Gemm biases for the mean weight error (off by default; see docs/results.md)" };
    public Option<string> Rounding { get; } = new("--rounding") { Description = "Weight rounding: nearest (default), adaround (learned per layer on calibration data) or brecq (learned per block: residual blocks jointly); docs/rounding.md", DefaultValueFactory = _ => "nearest" };
    public Option<string> RoundingTarget { get; } = new("--rounding-target") { Description = "What --rounding adaround fits each layer to: fp32 (the FP32 layer's output, default) or quantized (the layer on its quantized inputs)", DefaultValueFactory = _ => "fp32" };
    public Option<string> RoundingCheck { get; } = new("--rounding-check") { Description = "Learned rounding puts a layer's nearest codes back where its learned ones raise the model output loss on held-out calibration samples: rise (default; any rise beyond chance), double (only where they at least double it, beyond chance) or off (docs/rounding.md)", DefaultValueFactory = _ => "rise" };
    public Option<int> RoundingIterations { get; } = new("--rounding-iterations") { Description = "Learned-rounding optimizer iterations per layer (adaround) or per block (brecq)", DefaultValueFactory = _ => PtqTool.Rounding.AdaRound.DefaultIterations };
    public Option<int?> RoundingSamples { get; } = new("--rounding-samples") { Description = $"Calibration samples the layers' (blocks') inputs are collected on for --rounding adaround/brecq (default {RoundingStep.DefaultSamples}; {RoundingStep.DefaultBlockSamples} with brecq)" };
    public Option<double> Multipoint { get; } = new("--multipoint") { Description = "Multipoint weights: second low-bit terms for the output channels that gain most, within this fraction of the model's multiply-adds (0..1; docs/multipoint.md)", DefaultValueFactory = _ => 0 };
    public Option<string> MultipointForm { get; } = new("--multipoint-form") { Description = "How second terms run: auto (per layer, the form with fewer multiply-adds; default), scatter (a branch over the chosen channels only, placed by a one-hot 1x1 conv) or padded (a branch over whole layers)", DefaultValueFactory = _ => "auto" };
    public Option<string> Target { get; } = new("--target") { Description = "CPU the model is for: auto (this one), x86-vnni, x86-avx2, arm64, portable (docs/cpu-targets.md)", DefaultValueFactory = _ => "auto" };
    public Option<string?> SaturationGuard { get; } = new("--saturation-guard") { Description = "Override the target's guard against 16-bit pair saturation: none, pair-bound, 7bit-weights, 7bit-activations, u8-weights" };
    public Option<string> SmoothQuant { get; } = new("--smoothquant") { Description = "SmoothQuant: move LayerNorm outputs' outlier channels into the MatMul weights that read them: auto (alpha 0.5 where a LayerNorm feeds MatMul weights, with --calib/--calib-text; default), off, or the migration strength alpha in [0, 1] (docs/transformers.md)", DefaultValueFactory = _ => "auto" };
    public Option<string> Refine { get; } = new("--refine") { Description = "Activation scales: output (search each scale for the loss of the model's output against FP32 on calibration samples: KL for class scores, relative MSE otherwise), auto (output within a budget of 48 full-model passes, where calibration samples are given), off (each tensor's own choice); default auto; docs/accuracy.md", DefaultValueFactory = _ => "auto" };
    public Option<int?> RefineSamples { get; } = new("--refine-samples") { Description = $"Calibration samples --refine measures the output on (default {ScaleRefinementStep.DefaultSamples})" };
    public Option<string[]> Exclude { get; } = new("--exclude") { Description = "Node names or op types to keep in float", AllowMultipleArgumentsPerToken = true };
    public PreprocessingOptions Preprocessing { get; } = new();

    public void AddTo(Command command)
    {
        command.Arguments.Add(Model);
        Option[] data = [Calib, CalibText, Vocab, SeqLen, Cased, Limit, Batch, Strict, MemoryBudget];
        Option[] common = [Threads, Quiet];
        Option[] choices = [Loss, WeightLoss, Percentile, Bits, WeightBits, ActivationBits, ActivationType, SymmetricActivations, PerTensorWeights, WeightStorage, EmbeddingBits, Int4Rounding, Equalize, KeepAffine, BiasCorrection, OutputBiasCorrection, Rounding, RoundingTarget, RoundingCheck, RoundingIterations, RoundingSamples, Multipoint, MultipointForm, Target, SaturationGuard, Exclude, SmoothQuant, Refine, RefineSamples];
        IEnumerable<Option> options = scope switch
        {
            OptionScope.Quantize => [.. data, .. common, .. choices],
            OptionScope.Calibrate => [.. data, .. common, SymmetricActivations, Exclude, Equalize, KeepAffine],
            OptionScope.Sweep => [.. data, .. common, .. choices.Except([Loss, Bits, WeightBits, ActivationBits])],
            _ => common,
        };
        foreach (var o in options)
        {
            command.Options.Add(o);
            _added.Add(o);
        }
        Preprocessing.AddTo(command);
    }

    /// <summary>The option's value, or its default when this command does not take it.</summary>
    private T Get<T>(ParseResult parse, Option<T> option, T fallback) => _added.Contains(option) ? parse.GetValue(option)! : fallback;

    public QuantizeRequest Read(ParseResult parse) => Read(parse, evalText: null);

    /// <param name="evalText">--eval-text's file, for commands that evaluate.</param>
    public QuantizeRequest Read(ParseResult parse, string? evalText)
    {
        string? calib = Get(parse, Calib, null), calibText = Get(parse, CalibText, null);
        if (calib is not null && calibText is not null) throw new PtqException("--calib and --calib-text both give calibration data; give one");
        string? vocab = Get(parse, Vocab, null);
        var text = calibText is not null || evalText is not null
            ? new TextOptions(vocab, Get(parse, SeqLen, null), !Get(parse, Cased, false), calibText is not null, evalText is not null)
            : vocab is not null ? throw new PtqException("--vocab: give the sentences with --calib-text FILE or --eval-text FILE") : null;
        string type = Get(parse, ActivationType, "uint8");
        if (type is not ("int8" or "uint8")) throw new PtqException($"--activation-type: '{type}' is not int8 or uint8");
        string storage = Get(parse, WeightStorage, "int8");
        if (storage is not ("int8" or "int4")) throw new PtqException($"--weight-storage: '{storage}' is not int8 or int4");
        string tables = Get(parse, EmbeddingBits, "auto");
        int? embeddingBits = tables switch { "auto" => null, "8" => 8, "4" => 4, "off" => 0, _ => throw new PtqException($"--embedding-bits: '{tables}' is not 8, 4 or off") };
        string form = Get(parse, MultipointForm, "auto");
        if (form is not ("auto" or "scatter" or "padded")) throw new PtqException($"--multipoint-form: '{form}' is not auto, scatter or padded");
        int? bits = Get(parse, Bits, null);
        if (bits is < 2 or > 8) throw new PtqException($"--bits: {bits} is out of range (2..8)");
        var options = new QuantizationOptions
        {
            Loss = Get(parse, Loss, "msqe"),
            WeightLoss = Get(parse, WeightLoss, null),
            Percentile = Get(parse, Percentile, 99.99),
            WeightBits = Get(parse, WeightBits, null) ?? bits ?? 8,
            ActivationBits = Get(parse, ActivationBits, null) ?? bits ?? 8,
            UnsignedActivations = type == "uint8",
            SymmetricActivations = Get(parse, SymmetricActivations, false),
            PerChannelWeights = !Get(parse, PerTensorWeights, false),
            Int4WeightStorage = storage == "int4",
            BiasCorrection = Get(parse, BiasCorrection, false),
            Equalize = Get(parse, Equalize, false),
            FoldAffine = !Get(parse, KeepAffine, false),
            OutputBiasCorrection = Get(parse, OutputBiasCorrection, "on") switch { "on" => true, "off" => false, var v => throw new PtqException($"--output-bias-correction: '{v}' is not on or off") },
            EmbeddingBits = embeddingBits,
            Int4Rounding = Get(parse, Int4Rounding, null),
            Rounding = Get(parse, Rounding, "nearest"),
            RoundingTarget = Get(parse, RoundingTarget, "fp32"),
            RoundingCheck = Get(parse, RoundingCheck, "rise"),
            RoundingIterations = Get(parse, RoundingIterations, PtqTool.Rounding.AdaRound.DefaultIterations),
            Multipoint = Get(parse, Multipoint, 0.0),
            MultipointForm = form switch { "padded" => PtqTool.Multipoint.BranchForm.Padded, "scatter" => PtqTool.Multipoint.BranchForm.Scatter, _ => PtqTool.Multipoint.BranchForm.Auto },
            Exclude = Get(parse, Exclude, []) ?? [],
            Target = Kernels.KernelTargets.Parse(Get(parse, Target, "auto"), Kernels.CpuInfo.This),
            GuardOverride = Get(parse, SaturationGuard, null) is string g ? Kernels.SaturationGuards.Parse(g) : null,
        };
        return new QuantizeRequest
        {
            ModelPath = parse.GetValue(Model)!,
            Options = options,
            Preprocessing = Preprocessing.Read(parse),
            CalibDir = calib ?? calibText,
            Text = text,
            SmoothQuant = Get(parse, SmoothQuant, "auto"),
            Refine = Get(parse, Refine, "auto"),
            RefineSamples = Get(parse, RefineSamples, null),
            Limit = Get(parse, Limit, null),
            Batch = Get(parse, Batch, 32),
            Strict = Get(parse, Strict, false),
            MemoryBudgetMiB = Get(parse, MemoryBudget, 256),
            RoundingSamples = Get(parse, RoundingSamples, null),
            Threads = parse.GetValue(Threads),
        };
    }
}
