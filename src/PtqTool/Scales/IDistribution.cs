namespace PtqTool.Scales;

/// <summary>
/// The values of one tensor as the scale losses see them: raw samples (weights) or a histogram (activations).
/// Every loss is written once against this interface.
/// </summary>
public interface IDistribution
{
    long Count { get; }
    double Min { get; }
    double Max { get; }

    /// <summary>E[(x − Q(x; s, z))²].</summary>
    double Msqe(double s, int z, IntegerRange r);
    double MsqeDerivative(double s, int z, IntegerRange r);

    /// <summary>E[QSin(x; s, z)].</summary>
    double QSin(double s, int z, IntegerRange r);
    double QSinDerivative(double s, int z, IntegerRange r);

    /// <summary>The p-quantile (0 ≤ p ≤ 1) of the signed values.</summary>
    double Quantile(double p);
    /// <summary>The p-quantile of |x|.</summary>
    double AbsQuantile(double p);

    /// <summary>A histogram of |x| starting at 0 with equal-width bins, trimmed after its last non-empty bin (for entropy calibration).</summary>
    AbsHistogram AbsoluteHistogram();

    /// <summary>A cheaper approximation for ranking candidates (a histogram with fewer bins); the distribution itself when already cheap.</summary>
    IDistribution Coarse();
}

/// <summary>Counts of |x| in bins [i·Width, (i+1)·Width).</summary>
public sealed record AbsHistogram(double[] Counts, double Width);
