using PtqTool.Rewrite;

namespace PtqTool.Pipeline;

/// <summary>Sentences as samples: the tokenizer's vocabulary, the sequence length (null: each sentence its own), the case rule.</summary>
/// <param name="CalibText">--calib-text was given (CalibDir is then that file).</param>
/// <param name="EvalText">--eval-text was given (EvalDir is then that file).</param>
public sealed record TextOptions(string? Vocab, int? SequenceLength, bool Lowercase, bool CalibText, bool EvalText)
{
    public TextOptions Validated()
    {
        if (Vocab is null) throw new PtqException($"{(CalibText ? "--calib-text" : "--eval-text")}: tokenizing sentences needs --vocab FILE (the model's WordPiece vocab.txt)");
        if (SequenceLength is < 2 or > 8192) throw new PtqException($"--seq-len: {SequenceLength} must be in 2..8192");
        return this;
    }
}

/// <summary>The inputs of `ptq quantize` and `ptq calibrate`.</summary>
public sealed record QuantizeRequest
{
    public required string ModelPath { get; init; }
    public string? OutputPath { get; init; }
    public QuantizationOptions Options { get; init; } = new();
    public PreprocessingOverrides Preprocessing { get; init; } = new();
    /// <summary>The calibration folder, or with <see cref="Text"/>.CalibText a text file of sentences (--calib-text).</summary>
    public string? CalibDir { get; init; }
    /// <summary>Text samples for BERT-class encoders (--calib-text, --eval-text): sentences tokenized with --vocab.</summary>
    public TextOptions? Text { get; init; }
    /// <summary>
    /// --smoothquant: "auto" (α = <see cref="SmoothQuantStep.DefaultAlpha"/> wherever a LayerNorm feeds MatMul weights
    /// and calibration samples are given), "off", or α in [0, 1] (<see cref="SmoothQuantStep"/>).
    /// </summary>
    public string SmoothQuant { get; init; } = "auto";

    /// <summary>The migration strength asked for, or null for off; <see cref="SmoothQuantExplicit"/> tells auto from a given α.</summary>
    public double? SmoothQuantAlpha => SmoothQuant switch
    {
        "off" => null,
        "auto" => CalibDir is null ? null : SmoothQuantStep.DefaultAlpha,
        _ => double.TryParse(SmoothQuant, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double a) ? a
            : throw new PtqException($"--smoothquant: '{SmoothQuant}' is not auto, off or a number in [0, 1]"),
    };

    public bool SmoothQuantExplicit => SmoothQuant is not ("auto" or "off");
    public IReadOnlyList<string> StatsPaths { get; init; } = [];
    public string? EvalDir { get; init; }
    /// <summary>At most this many calibration samples.</summary>
    public int? Limit { get; init; }
    /// <summary>At most this many evaluation samples.</summary>
    public int? EvalLimit { get; init; }
    public int Batch { get; init; } = 32;
    public bool Strict { get; init; }
    public int Threads { get; init; }
    /// <summary>Collect per-channel input means (bias correction needs them; `ptq calibrate` keeps them for a later --bias-correction).</summary>
    public bool? KeepChannelMeans { get; init; }
    /// <summary>Budget for the intermediate tensors one calibration or per-layer run fetches at once (docs/real-models.md).</summary>
    public int MemoryBudgetMiB { get; init; } = (int)(Onnx.OutputGroups.DefaultBudgetBytes >> 20);
    /// <summary>Mixed precision: the average weight bits (Σ P_i·k_i / Σ P_i) the per-layer choice may not exceed.</summary>
    public double? AverageWeightBits { get; init; }
    /// <summary>Raise the most sensitive layers' weight bits until the gate holds on --eval (<see cref="FallbackJob"/>).</summary>
    public bool AutoFallback { get; init; }
    /// <summary>Samples layer sensitivities are measured on (--avg-bits, --auto-fallback, pareto): each costs one forward pass per tensor and width.</summary>
    public int SensitivitySamples { get; init; } = MixedPrecisionStep.DefaultSensitivitySamples;
    /// <summary>Samples each layer's inputs are collected on for --rounding adaround/brecq and --multipoint (--rounding-samples); null: <see cref="RoundingStep.DefaultSamples"/>, or <see cref="RoundingStep.DefaultBlockSamples"/> with brecq.</summary>
    public int? RoundingSamples { get; init; }

    /// <summary>
    /// --refine: "output" searches the activation scales for the model's output (<see cref="ScaleRefinementStep"/>)
    /// until a pass gains under 1 %, "auto" the same within <see cref="ScaleRefinementStep.AutoBudget"/> full-model passes
    /// where calibration samples are given (default: docs/accuracy.md), "off" keeps each tensor's own choice.
    /// </summary>
    public string Refine { get; init; } = "auto";
    /// <summary>A search step (--auto-fallback's measurements): the evaluation measures the outputs only, no latency (NaN) and no per-layer errors.</summary>
    public bool GateOnly { get; init; }
    /// <summary>Calibration samples the refinement measures the output on (--refine-samples); null: <see cref="ScaleRefinementStep.DefaultSamples"/>.</summary>
    public int? RefineSamples { get; init; }

    /// <summary>Whether the scales are refined on the output, given whether synthetic samples exist.</summary>
    public bool RefinesScales(bool synthetic) => Refine switch
    {
        "off" => false,
        "output" => true,
        _ => CalibDir is not null || synthetic,
    };

    /// <summary>The samples learned rounding (and multipoint) collect their inputs on.</summary>
    public int EffectiveRoundingSamples => RoundingSamples ?? (Options.Rounding == "brecq" ? RoundingStep.DefaultBlockSamples : RoundingStep.DefaultSamples);
    public double? MaxDrop { get; init; }
    /// <summary>--metric: what the gate and the report's headline compare (default from labels and the output shape).</summary>
    public string? Metric { get; init; }
    public double? MinSqnr { get; init; }
    public double? MinCosine { get; init; }
    public (int Index, int Count)? Shard { get; init; }
    public IReadOnlyList<string> ReportPaths { get; init; } = [];
    /// <summary>Data-free calibration: "zeroq" (distilled from BatchNormalization statistics) or "gaussian" (N(0,1) inputs).</summary>
    public string? Synthetic { get; init; }
    public Distill.DistillOptions Distill { get; init; } = new();

    public string ResolvedOutputPath => OutputPath ?? Path.ChangeExtension(ModelPath, null) + (Options.WeightBits == 8 && Options.ActivationBits == 8 ? ".int8.onnx" : $".w{Options.WeightBits}a{Options.ActivationBits}.onnx");

    /// <summary>
    /// The gate: --metric (or the one a threshold implies, or the default for the data and output), with the threshold
    /// given for it. A threshold of another metric's kind is an error.
    /// </summary>
    public Evaluation.Gate ResolveGate(bool labelled, int[] outputShape)
    {
        var implied = MinSqnr is not null ? Evaluation.GateMetric.Sqnr : MinCosine is not null ? Evaluation.GateMetric.Cosine : (Evaluation.GateMetric?)null;
        var metric = Metric is string m ? Evaluation.Gate.Parse(m) : implied ?? Evaluation.Gate.Default(labelled, outputShape);
        if (metric == Evaluation.GateMetric.Top1 && !labelled)
            throw new PtqException("--metric top1 needs a labelled --eval folder (one sub-folder per class)");
        var gate = new Evaluation.Gate(metric, metric switch
        {
            Evaluation.GateMetric.Sqnr => MinSqnr,
            Evaluation.GateMetric.Cosine => MinCosine,
            _ => MaxDrop,
        });
        double? stray = metric switch
        {
            Evaluation.GateMetric.Sqnr => MaxDrop ?? MinCosine,
            Evaluation.GateMetric.Cosine => MaxDrop ?? MinSqnr,
            _ => MinSqnr ?? MinCosine,
        };
        if (stray is not null)
            throw new PtqException($"the gate measures {gate.Describe()} (--metric {Evaluation.Gate.Name(metric)}); give its threshold with {gate.Option}");
        return gate;
    }

    /// <summary>Adds the calibration and evaluation data (folders, or text files) to <paramref name="check"/>.</summary>
    public IoCheck CheckDataPaths(IoCheck check)
    {
        if (Text?.CalibText == true) check.Input(CalibDir, "calibration sentences (--calib-text)"); else check.InputFolder(CalibDir, "calibration folder");
        if (Text?.EvalText == true) check.Input(EvalDir, "evaluation sentences (--eval-text)"); else check.InputFolder(EvalDir, "evaluation folder");
        if (Text?.Vocab is string v) check.Input(v, "vocabulary (--vocab)");
        return check;
    }

    /// <summary>Largest --batch: one batch of a 3×224×224 model is already 600 MB at this size.</summary>
    public const int MaxBatch = 1024;

    /// <summary>Refuses --calib together with --stats or --synthetic: which one calibrates would otherwise be a silent choice.</summary>
    public QuantizeRequest CheckSingleCalibrationSource()
    {
        var given = new[] { (CalibDir is not null, "--calib"), (StatsPaths.Count > 0, "--stats"), (Synthetic is not null, "--synthetic") }.Where(g => g.Item1).Select(g => g.Item2).ToList();
        if (given.Count > 1) throw new PtqException($"{string.Join(" and ", given)} both give calibration data; give one");
        return this;
    }

    public QuantizeRequest Validated()
    {
        Options.Validated();
        Text?.Validated();
        if (SmoothQuantExplicit)
        {
            if (SmoothQuantAlpha is not (>= 0 and <= 1)) throw new PtqException($"--smoothquant: {SmoothQuant} must be auto, off or in [0, 1] (the migration strength α; 0.5 is the paper's default)");
            if (CalibDir is null) throw new PtqException("--smoothquant: measuring the activations' channel maxima needs --calib DIR or --calib-text FILE");
        }
        if (Refine is not ("auto" or "output" or "off")) throw new PtqException($"--refine: '{Refine}' is not auto, output or off");
        if (RefineSamples is < 1 or > 100_000) throw new PtqException($"--refine-samples: {RefineSamples} must be in 1..100000");
        if (Refine == "output" && CalibDir is null && Synthetic is null)
            throw new PtqException("--refine output: measuring the model's output needs samples: give --calib DIR, --calib-text FILE or --synthetic");
        if (Batch is < 1 or > MaxBatch) throw new PtqException($"--batch: {Batch} must be in 1..{MaxBatch}");
        if (Limit is < 1) throw new PtqException($"--limit: {Limit} must be at least 1");
        if (EvalLimit is < 1) throw new PtqException($"--eval-limit: {EvalLimit} must be at least 1");
        if (Synthetic is not (null or "zeroq" or "gaussian")) throw new PtqException($"--synthetic: '{Synthetic}' is not zeroq or gaussian");
        if (Synthetic is not null) Distill.Validated();
        if (Threads < 0 || Threads > Environment.ProcessorCount)
            throw new PtqException($"--threads: {Threads} must be 0 (automatic) to {Environment.ProcessorCount} (this machine's cores)");
        if (MemoryBudgetMiB is < 16 or > 1 << 20) throw new PtqException($"--memory-budget: {MemoryBudgetMiB} MiB must be in 16..1048576");
        if (AverageWeightBits is double a && !(a >= 2 && a <= 8)) throw new PtqException($"--avg-bits: {a} must be in 2..8");
        if (AverageWeightBits is not null && CalibDir is null && EvalDir is null && Synthetic is null)
            throw new PtqException("--avg-bits: measuring each layer's sensitivity needs data: give --calib DIR, --synthetic or --eval DIR");
        if (SensitivitySamples is < 1 or > 100_000) throw new PtqException($"--sensitivity-samples: {SensitivitySamples} must be in 1..100000");
        if (RoundingSamples is < 1 or > 100_000) throw new PtqException($"--rounding-samples: {RoundingSamples} must be in 1..100000");
        if (Options.Rounding != "nearest" && CalibDir is null && Synthetic is null)
            throw new PtqException($"--rounding {Options.Rounding}: learning the rounding needs samples: give --calib DIR or --synthetic zeroq");
        if (Options.Multipoint > 0 && CalibDir is null && Synthetic is null)
            throw new PtqException("--multipoint: choosing where second terms pay needs samples: give --calib DIR or --synthetic zeroq");
        if (AutoFallback && (EvalDir is null || new[] { MaxDrop, MinSqnr, MinCosine }.All(t => t is null)))
            throw new PtqException("--auto-fallback needs --eval DIR and a gate to reach (--max-drop, --min-sqnr or --min-cosine)");
        if (MaxDrop is double m && (m < 0 || !double.IsFinite(m))) throw new PtqException($"--max-drop: {m} must be a non-negative number of points");
        if (MinSqnr is double q && !double.IsFinite(q)) throw new PtqException($"--min-sqnr: {q} must be a number of dB");
        if (MinCosine is double c && !(c >= -1 && c <= 1)) throw new PtqException($"--min-cosine: {c} must be in [-1, 1]");
        if (new[] { MaxDrop, MinSqnr, MinCosine }.Count(t => t is not null) > 1)
            throw new PtqException("give one gate threshold: --max-drop (top1, agreement), --min-sqnr or --min-cosine");
        if (Metric is not null) Evaluation.Gate.Parse(Metric);
        foreach (var r in ReportPaths)
            if (Path.GetExtension(r).ToLowerInvariant() is not (".json" or ".md" or ".markdown"))
                throw new PtqException($"--report: {r}: unknown format (use a .json or .md file name)");
        return this;
    }
}
