namespace PtqTool.Evaluation;

/// <summary>What the quality gate measures.</summary>
public enum GateMetric
{
    /// <summary>Top-1 points lost against FP32 (labelled classifiers).</summary>
    Top1,
    /// <summary>100 − top-1 agreement with FP32 (unlabelled classifiers).</summary>
    Agreement,
    /// <summary>Output SQNR in dB (detection maps, sequence logits, anything not one class per sample).</summary>
    Sqnr,
    /// <summary>Mean output cosine.</summary>
    Cosine,
}

/// <summary>The gate: a metric, its threshold (if any), and how a comparison is judged against it.</summary>
public sealed record Gate(GateMetric Metric, double? Threshold)
{
    public static readonly string[] Names = ["top1", "agreement", "sqnr", "cosine"];

    public static GateMetric Parse(string name) => name switch
    {
        "top1" => GateMetric.Top1,
        "agreement" => GateMetric.Agreement,
        "sqnr" => GateMetric.Sqnr,
        "cosine" => GateMetric.Cosine,
        _ => throw new PtqException($"--metric: '{name}' is not one of {string.Join(", ", Names)}"),
    };

    public static string Name(GateMetric m) => Names[(int)m];

    /// <summary>
    /// The metric when none is named: top-1 with labels; agreement when the output is one score vector per sample
    /// ([batch, classes]); otherwise SQNR (a heat map or a sequence has no single argmax that means anything).
    /// </summary>
    public static GateMetric Default(bool labelled, int[] outputShape) =>
        labelled ? GateMetric.Top1 : outputShape.Length == 2 ? GateMetric.Agreement : GateMetric.Sqnr;

    /// <summary>The gated number: points lost (top1, agreement) or the SQNR/cosine itself.</summary>
    public double Value(OutputComparison o) => Metric switch
    {
        GateMetric.Top1 => o.Top1Drop,
        GateMetric.Agreement => 100 - o.Agreement,
        GateMetric.Sqnr => o.SqnrDb,
        _ => o.Cosine,
    };

    /// <summary>Points lost must stay at or under the threshold; SQNR and cosine at or over it.</summary>
    public bool Passes(OutputComparison o) => Threshold is not double t
        || (Metric is GateMetric.Top1 or GateMetric.Agreement ? Value(o) <= t : Value(o) >= t);

    public string Describe() => Metric switch
    {
        GateMetric.Top1 => "top-1 drop",
        GateMetric.Agreement => "100 - agreement",
        GateMetric.Sqnr => "output SQNR",
        _ => "output cosine",
    };

    public string Unit => Metric switch { GateMetric.Sqnr => "dB", GateMetric.Cosine => "", _ => "pt" };

    /// <summary>The option that sets this metric's threshold.</summary>
    public string Option => Metric switch { GateMetric.Sqnr => "--min-sqnr", GateMetric.Cosine => "--min-cosine", _ => "--max-drop" };
}
