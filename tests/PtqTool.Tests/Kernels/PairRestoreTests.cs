using PtqTool.Kernels;

namespace PtqTool.Tests.Kernels;

/// <summary>Codes changed after pair bounding (learned rounding) get the bounded codes back on exactly the pairs that break the int16 bound.</summary>
public class PairRestoreTests
{
    [Fact]
    public void Only_pairs_over_the_bound_are_put_back_and_afterwards_none_is_over()
    {
        // One Gemm channel of 8 weights (K×N = 8×1), reduced in order, so the pairs are (0,1), (2,3), (4,5), (6,7).
        var layout = ReductionLayout.KByN(8, 1);
        var (pos, neg) = PairBound.Bounds(255);   // u8 activations: |qa| + |qb| ≤ 128 for same-signed pairs
        var safe = new[] { 64, 64, -60, -68, 100, -100, 10, 20 };
        var q = new[] { 65, 64, -61, -68, 101, -101, 11, 21 };
        int restored = PairBound.Restore(layout, q, safe, 255);
        Assert.Equal(2, restored);                               // (0,1) sums 129 and (2,3) sums −129; mixed signs and small pairs stay
        Assert.Equal(new[] { 64, 64, -60, -68, 101, -101, 11, 21 }, q);
        for (int r = 0; r < 8; r += 2)
        {
            int a = q[layout.Index[r]], b = q[layout.Index[r + 1]];
            if (a > 0 && b > 0) Assert.True(a + b <= pos);
            if (a < 0 && b < 0) Assert.True(-(a + b) <= neg);
        }
    }
}
