using System.Globalization;

namespace PtqTool.Scales;

/// <summary>The integer segment [Min, Max] a quantizer rounds into: int8 [-128,127], uint8 [0,255], or b-bit variants.</summary>
public readonly record struct IntegerRange(int Min, int Max)
{
    public static IntegerRange Int8 => new(-128, 127);
    public static IntegerRange UInt8 => new(0, 255);

    public static IntegerRange Signed(int bits)
    {
        CheckBits(bits);
        return new(-(1 << (bits - 1)), (1 << (bits - 1)) - 1);
    }

    public static IntegerRange Unsigned(int bits)
    {
        CheckBits(bits);
        return new(0, (1 << bits) - 1);
    }

    public bool IsSigned => Min < 0;

    public int Levels => Max - Min + 1;

    public int Bits => (int)Math.Round(Math.Log2(Levels));

    /// <summary>The zero point of symmetric quantization: 0 for signed segments, the middle level for unsigned ones (128 for uint8).</summary>
    public int SymmetricZeroPoint => IsSigned ? 0 : (Min + Max + 1) / 2;

    /// <summary>"-8,7" or "int8", "uint8", "int4", "uint4", ... </summary>
    public static IntegerRange Parse(string text)
    {
        text = text.Trim().ToLowerInvariant();
        if (text.StartsWith("uint", StringComparison.Ordinal) && int.TryParse(text.AsSpan(4), out int ub)) return Unsigned(ub);
        if (text.StartsWith("int", StringComparison.Ordinal) && int.TryParse(text.AsSpan(3), out int sb)) return Signed(sb);
        var parts = text.Split(',');
        if (parts.Length == 2
            && int.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int lo)
            && int.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int hi)
            && lo <= 0 && hi > lo && hi >= 0)
            return new IntegerRange(lo, hi);
        throw new PtqException($"segment '{text}' is not 'l,u' with l <= 0 <= u, l < u (e.g. -128,127) or intB/uintB");
    }

    public override string ToString() => $"[{Min},{Max}]";

    private static void CheckBits(int bits)
    {
        if (bits is < 2 or > 16) throw new PtqException($"bit width {bits} is out of range (2..16)");
    }
}

/// <summary>
/// What to quantize into: the integer segment and whether the zero point is fixed at the middle (symmetric), pinned
/// to a given level (e.g. the bottom, so the quantizer clips at 0 like a folded Relu), or chosen.
/// </summary>
public readonly record struct QuantSpec(IntegerRange Range, bool Symmetric, int? PinnedZeroPoint = null)
{
    /// <summary>The zero point the spec fixes, if any.</summary>
    public int? FixedZeroPoint => Symmetric ? Range.SymmetricZeroPoint : PinnedZeroPoint;
}

/// <summary>A chosen scale and zero point: r = Scale·(q − ZeroPoint).</summary>
public readonly record struct QuantParams(double Scale, int ZeroPoint)
{
    public override string ToString() => $"s={Scale:G6} z={ZeroPoint}";
}
