namespace PtqTool.Scales;

/// <summary>
/// A streaming histogram of one tensor's values with fixed memory. Its range is [−t, t] with t = 2^Exponent and
/// 2·BinsPerSide bins of width t/BinsPerSide. When a value beyond t arrives, t doubles and adjacent bin pairs merge,
/// which is exact because bin edges nest. Bin assignment is floor(x / width) with a power-of-two width, so it is exact
/// too: the histogram of a data set does not depend on batch order or on how it was split into shards and merged.
/// Exact min, max and count are kept beside the bins; NaN and ±Inf are counted and left out.
/// </summary>
public sealed class Histogram
{
    public const int DefaultBinsPerSide = 2048;
    /// <summary>The exponent of an empty or all-zero histogram.</summary>
    public const int MinExponent = -40;

    private long[] _counts;

    public int BinsPerSide { get; }
    public int Exponent { get; private set; } = MinExponent;
    public long Count { get; private set; }
    public long NonFinite { get; private set; }
    public double Min { get; private set; } = double.PositiveInfinity;
    public double Max { get; private set; } = double.NegativeInfinity;

    public Histogram(int binsPerSide = DefaultBinsPerSide)
    {
        if (binsPerSide < 2 || (binsPerSide & (binsPerSide - 1)) != 0)
            throw new ArgumentException("bins per side must be a power of two", nameof(binsPerSide));
        BinsPerSide = binsPerSide;
        _counts = new long[2 * binsPerSide];
    }

    public ReadOnlySpan<long> Counts => _counts;
    public int BinCount => _counts.Length;
    public double HalfRange => Math.ScaleB(1.0, Exponent);
    public double BinWidth => HalfRange / BinsPerSide;
    public double LeftEdge(int bin) => (bin - BinsPerSide) * BinWidth;

    public void Add(ReadOnlySpan<float> values)
    {
        double maxAbs = 0, min = Min, max = Max;
        long finite = 0;
        foreach (float v in values)
        {
            if (!float.IsFinite(v)) { NonFinite++; continue; }
            finite++;
            if (v < min) min = v;
            if (v > max) max = v;
        }
        if (finite == 0) return;
        maxAbs = Math.Max(Math.Abs(min), Math.Abs(max));
        GrowToCover(maxAbs);
        Min = min;
        Max = max;
        Count += finite;
        double invWidth = Math.ScaleB(1.0, -(Exponent - Log2(BinsPerSide)));
        int last = _counts.Length - 1, offset = BinsPerSide;
        foreach (float v in values)
        {
            if (!float.IsFinite(v)) continue;
            int bin = (int)Math.Floor(v * invWidth) + offset;
            if (bin > last) bin = last;
            else if (bin < 0) bin = 0;
            _counts[bin]++;
        }
    }

    /// <summary>Adds another histogram of the same tensor (another shard or batch). Exact.</summary>
    public void Merge(Histogram other)
    {
        if (other.BinsPerSide != BinsPerSide)
            throw new ArgumentException("cannot merge histograms with different bin counts", nameof(other));
        if (other.Count == 0) { NonFinite += other.NonFinite; return; }
        var theirs = other._counts;
        if (other.Exponent < Exponent)
        {
            var copy = other.Clone();
            copy.SetExponent(Exponent);
            theirs = copy._counts;
        }
        else if (other.Exponent > Exponent)
        {
            SetExponent(other.Exponent);
        }
        for (int i = 0; i < _counts.Length; i++) _counts[i] += theirs[i];
        Count += other.Count;
        NonFinite += other.NonFinite;
        Min = Math.Min(Min, other.Min);
        Max = Math.Max(Max, other.Max);
    }

    /// <summary>The same data with <paramref name="factor"/> adjacent bins merged (exact: coarse edges are fine edges).</summary>
    public Histogram Coarsened(int factor)
    {
        if (factor <= 1 || BinsPerSide % factor != 0 || BinsPerSide / factor < 2) return Clone();
        var h = new Histogram(BinsPerSide / factor) { Exponent = Exponent, Count = Count, NonFinite = NonFinite, Min = Min, Max = Max };
        for (int i = 0; i < _counts.Length; i++) h._counts[i / factor] += _counts[i];
        return h;
    }

    public Histogram Clone()
    {
        var h = new Histogram(BinsPerSide) { Exponent = Exponent, Count = Count, NonFinite = NonFinite, Min = Min, Max = Max };
        _counts.CopyTo(h._counts, 0);
        return h;
    }

    /// <summary>Rebuilds a histogram from its stored parts (statistics files).</summary>
    public static Histogram Restore(int binsPerSide, int exponent, long count, long nonFinite, double min, double max, long[] counts)
    {
        var h = new Histogram(binsPerSide);
        if (counts.Length != h._counts.Length) throw new PtqException($"histogram has {counts.Length} bins, expected {h._counts.Length}");
        if (counts.Sum() != count) throw new PtqException("histogram counts do not add up to its count");
        h.Exponent = exponent;
        h.Count = count;
        h.NonFinite = nonFinite;
        h.Min = min;
        h.Max = max;
        counts.CopyTo(h._counts, 0);
        return h;
    }

    private void GrowToCover(double maxAbs)
    {
        if (maxAbs <= 0) return;
        int needed = Math.Max(MinExponent, (int)Math.Ceiling(Math.Log2(maxAbs)));
        // t must exceed every value strictly, so no value needs clamping into the last bin (which would break nesting).
        while (Math.ScaleB(1.0, needed) <= maxAbs) needed++;
        if (Count == 0) Exponent = Math.Max(Exponent, needed);
        else if (needed > Exponent) SetExponent(needed);
    }

    /// <summary>Doubles the range (merging bin pairs) until the exponent reaches <paramref name="exponent"/>.</summary>
    private void SetExponent(int exponent)
    {
        int n = BinsPerSide;
        while (Exponent < exponent)
        {
            var merged = new long[_counts.Length];
            // Bin i covers [(i−n)w, (i−n+1)w); after doubling it lands in bin floor((i−n)/2) + n.
            for (int i = 0; i < _counts.Length; i++)
                merged[(int)Math.Floor((i - n) / 2.0) + n] += _counts[i];
            _counts = merged;
            Exponent++;
        }
    }

    private static int Log2(int powerOfTwo) => System.Numerics.BitOperations.Log2((uint)powerOfTwo);
}
