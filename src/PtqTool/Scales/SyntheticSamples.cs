namespace PtqTool.Scales;

/// <summary>Seeded draws from standard test distributions (for plots, tables, benchmarks and tests).</summary>
public static class SyntheticSamples
{
    public static float[] Draw(string kind, int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            x[i] = kind switch
            {
                "normal" => (float)Normal(rng),
                "laplace" => (float)Laplace(rng),
                "uniform" => (float)(rng.NextDouble() * 2 - 1),
                "bimodal" => (float)(Normal(rng) * 0.3 + (rng.NextDouble() < 0.5 ? -2 : 2)),
                // Student t with 3 degrees of freedom: a heavy tail.
                "heavy" => (float)(Normal(rng) / Math.Sqrt((Square(Normal(rng)) + Square(Normal(rng)) + Square(Normal(rng))) / 3)),
                "relu" => (float)Math.Max(0, Normal(rng)),
                _ => throw new PtqException($"unknown distribution '{kind}' (expected normal, laplace, uniform, bimodal, heavy or relu)"),
            };
        }
        return x;
    }

    public static double Normal(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    public static double Laplace(Random rng)
    {
        double u = rng.NextDouble() - 0.5;
        return -Math.Sign(u) * Math.Log(1 - 2 * Math.Abs(u)) / Math.Sqrt(2);
    }

    private static double Square(double v) => v * v;
}
