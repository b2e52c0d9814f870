namespace PtqTool.Scales.Losses;

/// <summary>The losses by name, as the command line spells them.</summary>
public static class ScaleLosses
{
    public static readonly string[] Names = ["minmax", "percentile", "entropy", "msqe", "qsin"];

    /// <param name="option">The command-line option that named the loss, for the error message.</param>
    public static IScaleLoss Create(string name, double percentile = 99.99, string option = "--loss") => name switch
    {
        "minmax" => new MinMaxLoss(),
        "percentile" => new PercentileLoss(percentile),
        "entropy" => new EntropyLoss(),
        "msqe" => new MsqeLoss(),
        "qsin" => new QSinLoss(),
        _ => throw new PtqException($"{option}: unknown loss '{name}' (expected {string.Join(", ", Names)})"),
    };
}
