namespace PtqTool.Scales.Losses;

/// <summary>The losses by name, as the command line spells them.</summary>
public static class ScaleLosses
{
    public static readonly string[] Names = ["minmax", "percentile", "entropy", "msqe", "qsin"];

    public static IScaleLoss Create(string name, double percentile = 99.99) => name switch
    {
        "minmax" => new MinMaxLoss(),
        "percentile" => new PercentileLoss(percentile),
        "entropy" => new EntropyLoss(),
        "msqe" => new MsqeLoss(),
        "qsin" => new QSinLoss(),
        _ => throw new PtqException($"--loss: unknown loss '{name}' (expected {string.Join(", ", Names)})"),
    };
}
