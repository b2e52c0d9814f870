using PtqTool.Scales;

namespace PtqTool.Tests.Scales;

public class QSinFunctionTests
{
    public static IEnumerable<object[]> Segments() =>
    [
        [-128, 127, 0], [-8, 7, 0], [-2, 1, 0], [0, 255, 37], [0, 15, 3],
    ];

    [Theory]
    [MemberData(nameof(Segments))]
    public void Is_zero_exactly_on_every_grid_point(int l, int u, int z)
    {
        var r = new IntegerRange(l, u);
        const double s = 0.37;
        for (int m = l - z; m <= u - z; m++)
            Assert.True(QSinFunction.Value(s * m, s, z, r) < 1e-24, $"QSin({m}s) = {QSinFunction.Value(s * m, s, z, r)}");
    }

    [Theory]
    [MemberData(nameof(Segments))]
    public void Is_continuous_with_a_continuous_derivative_at_the_glue_points(int l, int u, int z)
    {
        var r = new IntegerRange(l, u);
        const double s = 0.37;
        foreach (double end in new[] { s * (l - z), s * (u - z) })
        {
            foreach (double eps in new[] { 1e-3, 1e-4, 1e-5 })
            {
                double jump = Math.Abs(QSinFunction.Value(end + eps, s, z, r) - QSinFunction.Value(end - eps, s, z, r));
                double slopeJump = Math.Abs(QSinFunction.DerivativeX(end + eps, s, z, r) - QSinFunction.DerivativeX(end - eps, s, z, r));
                // Both sides behave like (x − end)² near the end: the values at end ± ε differ by O(ε⁴) and the slopes
                // (±2ε) by 4ε + O(ε³). A jump in value or slope would not shrink with ε.
                Assert.True(jump < 10 * eps * eps * eps, $"value jump {jump} at {end}, eps {eps}");
                Assert.True(slopeJump < 4.001 * eps, $"slope jump {slopeJump} at {end}, eps {eps}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Segments))]
    public void Lies_between_four_over_pi_squared_and_one_times_the_squared_error(int l, int u, int z)
    {
        var r = new IntegerRange(l, u);
        var rng = new Random(l * 31 + u);
        const double c1 = 4 / (Math.PI * Math.PI);
        for (int i = 0; i < 5000; i++)
        {
            double s = 0.01 + rng.NextDouble();
            double x = (rng.NextDouble() * 1.4 - 0.7) * s * (u - l) + s * ((l + u) / 2.0 - z);
            double e = x - UniformQuantizer.FakeQuantize(x, s, z, r);
            double q = QSinFunction.Value(x, s, z, r);
            Assert.True(q >= c1 * e * e - 1e-12 && q <= e * e + 1e-12, $"x={x} s={s}: QSin {q}, squared error {e * e}");
            if (x > s * (u - z) || x < s * (l - z)) Assert.Equal(e * e, q, 1e-9);
        }
    }

    [Theory]
    [MemberData(nameof(Segments))]
    public void Pointwise_derivatives_match_central_differences(int l, int u, int z)
    {
        var r = new IntegerRange(l, u);
        var rng = new Random(u - l);
        for (int i = 0; i < 500; i++)
        {
            double s = 0.05 + rng.NextDouble();
            double x = (rng.NextDouble() * 1.6 - 0.8) * s * (u - l) + s * ((l + u) / 2.0 - z);
            double h = 1e-6 * s;
            double dx = (QSinFunction.Value(x + h, s, z, r) - QSinFunction.Value(x - h, s, z, r)) / (2 * h);
            double ds = (QSinFunction.Value(x, s + h, z, r) - QSinFunction.Value(x, s - h, z, r)) / (2 * h);
            Assert.Equal(dx, QSinFunction.DerivativeX(x, s, z, r), 1e-5 * (1 + Math.Abs(dx)));
            Assert.Equal(ds, QSinFunction.DerivativeS(x, s, z, r), 1e-4 * (1 + Math.Abs(ds)));
        }
    }
}
