using PtqTool.Scales;

namespace PtqTool.Tests.Scales;

public class IntervalIntegralsTests
{
    private static double Quadrature(Func<double, double> f, double p, double q, int n = 200_000)
    {
        double h = (q - p) / n, total = 0;
        for (int i = 0; i < n; i++) total += f(p + (i + 0.5) * h);
        return total * h;
    }

    [Theory]
    [InlineData(-128, 127, 0)]
    [InlineData(-8, 7, 0)]
    [InlineData(-2, 1, 0)]
    [InlineData(0, 15, 4)]
    public void Closed_forms_match_numerical_quadrature(int l, int u, int z)
    {
        var r = new IntegerRange(l, u);
        var rng = new Random(7 + l);
        for (int i = 0; i < 40; i++)
        {
            double s = 0.1 + rng.NextDouble();
            double span = s * (u - l);
            double p = (rng.NextDouble() - 0.5) * 1.6 * span + s * ((l + u) / 2.0 - z);
            double q = p + rng.NextDouble() * span * (i % 4 == 0 ? 1.0 : 0.05);
            double mse = Quadrature(x => Math.Pow(x - UniformQuantizer.FakeQuantize(x, s, z, r), 2), p, q);
            double qsin = Quadrature(x => QSinFunction.Value(x, s, z, r), p, q);
            double dqsin = Quadrature(x => QSinFunction.DerivativeS(x, s, z, r), p, q);
            Assert.Equal(mse, IntervalIntegrals.SquaredError(p, q, s, z, r), 1e-6 * (1 + Math.Abs(mse)));
            Assert.Equal(qsin, IntervalIntegrals.QSin(p, q, s, z, r), 1e-6 * (1 + Math.Abs(qsin)));
            Assert.Equal(dqsin, IntervalIntegrals.QSinDerivative(p, q, s, z, r), 1e-5 * (1 + Math.Abs(dqsin)));
            double h = 1e-6 * s;
            double dmse = (IntervalIntegrals.SquaredError(p, q, s + h, z, r) - IntervalIntegrals.SquaredError(p, q, s - h, z, r)) / (2 * h);
            Assert.Equal(dmse, IntervalIntegrals.SquaredErrorDerivative(p, q, s, z, r), 1e-4 * (1 + Math.Abs(dmse)));
        }
    }
}
