namespace PtqTool.Scales;

/// <summary>Signal-to-quantization-noise ratio.</summary>
public static class Sqnr
{
    /// <summary>10·log10(Σx² / Σ(x − q)²); +∞ when there is no error.</summary>
    public static double Decibels(double signal, double noise) =>
        noise <= 0 ? double.PositiveInfinity : 10 * Math.Log10(Math.Max(signal, double.Epsilon) / noise);
}
