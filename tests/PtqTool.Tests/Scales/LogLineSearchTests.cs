using PtqTool.Scales;

namespace PtqTool.Tests.Scales;

public class LogLineSearchTests
{
    [Theory]
    [InlineData(0.9)]
    [InlineData(1.17)]
    [InlineData(1.4)]
    [InlineData(0.7)]
    public void FindsTheMinimumOfAParabolaInLogMultiplier(double best)
    {
        // Exactly quadratic in u = ln m: the fitted vertex is the minimum, within one step beyond the bracket.
        double c = Math.Log(best);
        double F(double m) => Math.Pow(Math.Log(m) - c, 2) + 3;
        var r = LogLineSearch.Minimize(F, F(1), 1.25, 0.25, 4);
        Assert.Equal(best, r.Multiplier, 9);
        Assert.Equal(3, r.Loss, 9);
        Assert.Equal(3, r.Evaluations);
    }

    [Fact]
    public void NeverReturnsWorseThanTheStartAndReturnsTheBestPointItMeasured()
    {
        var rng = new Random(5);
        for (int trial = 0; trial < 200; trial++)
        {
            // Rough, many-minimum losses (as MSQE is in the scale): the result is the least of what was measured, m = 1 included.
            double[] a = Enumerable.Range(0, 4).Select(_ => rng.NextDouble()).ToArray();
            double F(double m) => a[0] * Math.Sin(17 * a[1] * m) + a[2] * Math.Pow(m - 0.5 - a[3], 2);
            var seen = new List<(double M, double L)>();
            double Tracked(double m) { double l = F(m); seen.Add((m, l)); return l; }
            double hi = trial % 3 == 0 ? 1 : 2;
            var r = LogLineSearch.Minimize(Tracked, F(1), 1.25, 0.5, hi);
            Assert.Equal(seen.Count, r.Evaluations);
            Assert.True(r.Loss <= F(1));
            Assert.Equal(Math.Min(F(1), seen.Min(s => s.L)), r.Loss, 12);
            Assert.Equal(r.Loss, F(r.Multiplier), 12);
            Assert.All(seen, s => Assert.InRange(s.M, 0.5 - 1e-12, hi + 1e-12));
        }
    }

    [Fact]
    public void AtACapItSearchesBelowOnly()
    {
        var seen = new List<double>();
        var r = LogLineSearch.Minimize(m => { seen.Add(m); return Math.Abs(m - 0.6); }, 0.4, 1.25, 0.5, 1);
        Assert.All(seen, m => Assert.True(m < 1));
        Assert.True(r.Multiplier < 1 && r.Loss < 0.4);
    }

    [Fact]
    public void VertexOfThreePoints()
    {
        // y = 2 (x − 0.3)² + 1 at x = −1, 0.5, 2.
        double Y(double x) => 2 * Math.Pow(x - 0.3, 2) + 1;
        Assert.Equal(0.3, LogLineSearch.Vertex(-1, Y(-1), 0.5, Y(0.5), 2, Y(2))!.Value, 12);
        Assert.Null(LogLineSearch.Vertex(-1, -Y(-1), 0.5, -Y(0.5), 2, -Y(2)));
    }
}
