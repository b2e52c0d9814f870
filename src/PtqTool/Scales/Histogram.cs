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
        if (values.IsEmpty) return;
        // Fast path: min and max with SIMD in one pass; both finite means every value is, and the bins can be computed 8 at a time.
        var (vmin, vmax) = MinMax(values);
        if (!float.IsFinite(vmin) || !float.IsFinite(vmax))
        {
            AddWithNonFinite(values);
            return;
        }
        GrowToCover(Math.Max(Math.Abs((double)vmin), Math.Abs((double)vmax)));
        Min = Math.Min(Min, vmin);
        Max = Math.Max(Max, vmax);
        Count += values.Length;
        Bin(values);
    }

    /// <summary>Min and max in one pass; NaN in any lane makes both NaN (so the caller takes the non-finite path).</summary>
    private static (float Min, float Max) MinMax(ReadOnlySpan<float> values)
    {
        int i = 0;
        float mn = float.PositiveInfinity, mx = float.NegativeInfinity;
        bool nan = false;
        if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated && values.Length >= 8)
        {
            ref float src = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(values);
            var vmn = System.Runtime.Intrinsics.Vector256.Create(float.PositiveInfinity);
            var vmx = System.Runtime.Intrinsics.Vector256.Create(float.NegativeInfinity);
            var ordered = System.Runtime.Intrinsics.Vector256<float>.AllBitsSet;
            for (; i + 8 <= values.Length; i += 8)
            {
                var v = System.Runtime.Intrinsics.Vector256.LoadUnsafe(ref src, (nuint)i);
                vmn = System.Runtime.Intrinsics.Vector256.Min(vmn, v);
                vmx = System.Runtime.Intrinsics.Vector256.Max(vmx, v);
                ordered &= System.Runtime.Intrinsics.Vector256.Equals(v, v);
            }
            nan = System.Runtime.Intrinsics.Vector256.ExtractMostSignificantBits(ordered) != 0xFFu;
            for (int k = 0; k < 8; k++)
            {
                mn = Math.Min(mn, System.Runtime.Intrinsics.Vector256.GetElement(vmn, k));
                mx = Math.Max(mx, System.Runtime.Intrinsics.Vector256.GetElement(vmx, k));
            }
        }
        for (; i < values.Length; i++)
        {
            float v = values[i];
            if (float.IsNaN(v)) nan = true;
            if (v < mn) mn = v;
            if (v > mx) mx = v;
        }
        return nan ? (float.NaN, float.NaN) : (mn, mx);
    }

    /// <summary>
    /// Counts finite values into their bins: floor(v · 2^k) + BinsPerSide, with 1/width = 2^k a power of two, so the
    /// product is exact in float32 and the vector path equals the scalar one bit for bit.
    /// </summary>
    private void Bin(ReadOnlySpan<float> values)
    {
        float invWidth = (float)Math.ScaleB(1.0, -(Exponent - Log2(BinsPerSide)));
        int last = _counts.Length - 1, offset = BinsPerSide, n = _counts.Length;
        int i = 0;
        // Long spans count into four interleaved 16-bit tables (consecutive equal values, the zeros after a Relu, would
        // otherwise wait on each other's increment; 16 bits keep the four tables within a core's L1 cache), in chunks
        // short enough that no table entry overflows, each chunk merged into the long counts.
        if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated && values.Length >= 4 * n)
        {
            var tables = Scratch(4 * n);
            var scale = System.Runtime.Intrinsics.Vector256.Create(invWidth);
            var off = System.Runtime.Intrinsics.Vector256.Create(offset);
            var lo = System.Runtime.Intrinsics.Vector256<int>.Zero;
            var hi = System.Runtime.Intrinsics.Vector256.Create(last);
            ref float src = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(values);
            ref ushort t0 = ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(tables);
            ref ushort t1 = ref System.Runtime.CompilerServices.Unsafe.Add(ref t0, n);
            ref ushort t2 = ref System.Runtime.CompilerServices.Unsafe.Add(ref t0, 2 * n);
            ref ushort t3 = ref System.Runtime.CompilerServices.Unsafe.Add(ref t0, 3 * n);
            long zeros = 0;
            Span<int> lanes = stackalloc int[8];
            ref int lane = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(lanes);
            while (i + 8 <= values.Length)
            {
                // Each table takes two of a vector's eight values, a quarter of the chunk: at most 65535 in one entry.
                int end = Math.Min(values.Length, i + ChunkValues) & ~7;
                for (; i < end; i += 8)
                {
                    var v = System.Runtime.Intrinsics.Vector256.LoadUnsafe(ref src, (nuint)i);
                    // A run of exact zeros (a Relu's output) lands in one bin: count it without touching the tables.
                    if (System.Runtime.Intrinsics.Vector256.EqualsAll(v, System.Runtime.Intrinsics.Vector256<float>.Zero)) { zeros += 8; continue; }
                    // Bins are clamped into [0, last] before use, so the unchecked increments stay inside the tables.
                    var b = System.Runtime.Intrinsics.Vector256.Min(System.Runtime.Intrinsics.Vector256.Max(
                        System.Runtime.Intrinsics.Vector256.ConvertToInt32(System.Runtime.Intrinsics.Vector256.Floor(v * scale)) + off, lo), hi);
                    System.Runtime.Intrinsics.Vector256.StoreUnsafe(b, ref lane);
                    System.Runtime.CompilerServices.Unsafe.Add(ref t0, lane)++;
                    System.Runtime.CompilerServices.Unsafe.Add(ref t1, System.Runtime.CompilerServices.Unsafe.Add(ref lane, 1))++;
                    System.Runtime.CompilerServices.Unsafe.Add(ref t2, System.Runtime.CompilerServices.Unsafe.Add(ref lane, 2))++;
                    System.Runtime.CompilerServices.Unsafe.Add(ref t3, System.Runtime.CompilerServices.Unsafe.Add(ref lane, 3))++;
                    System.Runtime.CompilerServices.Unsafe.Add(ref t0, System.Runtime.CompilerServices.Unsafe.Add(ref lane, 4))++;
                    System.Runtime.CompilerServices.Unsafe.Add(ref t1, System.Runtime.CompilerServices.Unsafe.Add(ref lane, 5))++;
                    System.Runtime.CompilerServices.Unsafe.Add(ref t2, System.Runtime.CompilerServices.Unsafe.Add(ref lane, 6))++;
                    System.Runtime.CompilerServices.Unsafe.Add(ref t3, System.Runtime.CompilerServices.Unsafe.Add(ref lane, 7))++;
                }
                for (int b = 0; b < n; b++)
                {
                    _counts[b] += tables[b] + tables[n + b] + tables[2 * n + b] + tables[3 * n + b];
                    tables[b] = tables[n + b] = tables[2 * n + b] = tables[3 * n + b] = 0;
                }
            }
            _counts[offset] += zeros;
        }
        for (; i < values.Length; i++)
        {
            int bin = (int)MathF.Floor(values[i] * invWidth) + offset;
            _counts[Math.Clamp(bin, 0, last)]++;
        }
    }

    /// <summary>Values per chunk of the table path: each of the four 16-bit tables takes at most a quarter of them.</summary>
    private const int ChunkValues = 4 * ushort.MaxValue & ~7;

    [ThreadStatic] private static ushort[]? _scratch;

    /// <summary>A zeroed per-thread table of at least <paramref name="length"/> counters (returned zeroed by <see cref="Bin"/>).</summary>
    private static ushort[] Scratch(int length)
    {
        if (_scratch is null || _scratch.Length < length) _scratch = new ushort[length];
        return _scratch;
    }

    /// <summary>The path for spans holding NaN or ±Inf: those are counted apart and left out.</summary>
    private void AddWithNonFinite(ReadOnlySpan<float> values)
    {
        double min = Min, max = Max;
        long finite = 0;
        foreach (float v in values)
        {
            if (!float.IsFinite(v)) { NonFinite++; continue; }
            finite++;
            if (v < min) min = v;
            if (v > max) max = v;
        }
        if (finite == 0) return;
        GrowToCover(Math.Max(Math.Abs(min), Math.Abs(max)));
        Min = min;
        Max = max;
        Count += finite;
        float invWidth = (float)Math.ScaleB(1.0, -(Exponent - Log2(BinsPerSide)));
        int last = _counts.Length - 1, offset = BinsPerSide;
        foreach (float v in values)
        {
            if (!float.IsFinite(v)) continue;
            int bin = (int)MathF.Floor(v * invWidth) + offset;
            _counts[Math.Clamp(bin, 0, last)]++;
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
