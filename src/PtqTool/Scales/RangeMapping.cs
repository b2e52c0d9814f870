namespace PtqTool.Scales;

/// <summary>Turns a real range [lo, hi] into a scale and zero point (the range is widened to include 0, as ONNX Runtime does).</summary>
public static class RangeMapping
{
    /// <summary>The scale used when a tensor is constant zero: any scale represents it exactly; 1 keeps it harmless.</summary>
    public const double ScaleOfZeroRange = 1.0;

    /// <summary>
    /// Ranges below this are quantized as zero. Exports carry dead channels whose weights are denormals (3e-40 in
    /// PaddleOCR's recognizer): their scale would be a float denormal, 1/s overflows float and every product is nil anyway.
    /// </summary>
    public const double NegligibleMagnitude = 1e-30;

    /// <summary>Whether [lo, hi] is so small that it is quantized as zero (<see cref="NegligibleMagnitude"/>).</summary>
    public static bool IsNegligible(double lo, double hi) => !(Math.Max(Math.Abs(lo), Math.Abs(hi)) >= NegligibleMagnitude);

    public static QuantParams FromRange(double lo, double hi, QuantSpec spec)
    {
        lo = Math.Min(lo, 0);
        hi = Math.Max(hi, 0);
        if (IsNegligible(lo, hi)) lo = hi = 0;
        var r = spec.Range;
        if (spec.Symmetric)
        {
            int z = r.SymmetricZeroPoint;
            double s = CoveringScale(lo, hi, z, r);
            return new QuantParams(s > 0 ? s : ScaleOfZeroRange, z);
        }
        if (spec.PinnedZeroPoint is int pz)
        {
            double ps = CoveringScale(lo, hi, pz, r);
            return new QuantParams(ps > 0 && double.IsFinite(ps) ? ps : ScaleOfZeroRange, pz);
        }
        double scale = (hi - lo) / (r.Max - r.Min);
        if (!(scale > 0)) return new QuantParams(ScaleOfZeroRange, Math.Clamp(0, r.Min, r.Max));
        int zp = (int)Math.Clamp(Math.Round(r.Min - lo / scale, MidpointRounding.ToEven), r.Min, r.Max);
        return new QuantParams(scale, zp);
    }

    /// <summary>The smallest scale at which zero point <paramref name="z"/> represents both lo ≤ 0 and hi ≥ 0 without clipping.</summary>
    public static double CoveringScale(double lo, double hi, int z, IntegerRange r)
    {
        double s = 0;
        if (hi > 0) s = r.Max > z ? hi / (r.Max - z) : double.PositiveInfinity;
        if (lo < 0) s = Math.Max(s, z > r.Min ? -lo / (z - r.Min) : double.PositiveInfinity);
        return s;
    }

    /// <summary>Symmetric: scale for a threshold T = max |x| to keep.</summary>
    public static QuantParams FromThreshold(double threshold, IDistribution d, QuantSpec spec) =>
        spec.Symmetric
            ? FromRange(-threshold, threshold, spec)
            : FromRange(Math.Max(d.Min, -threshold), Math.Min(d.Max, threshold), spec);
}
