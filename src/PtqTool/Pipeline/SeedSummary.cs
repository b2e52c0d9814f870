namespace PtqTool.Pipeline;

/// <summary>Mean and sample standard deviation (n − 1) of one number measured once per seed; 0 deviation for one run.</summary>
public sealed record SeedSummary(double Mean, double StandardDeviation, int Runs)
{
    public static SeedSummary Of(IEnumerable<double> values)
    {
        var v = values.ToList();
        if (v.Count == 0) throw new ArgumentException("no values", nameof(values));
        double mean = v.Average();
        double sd = v.Count > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Count - 1)) : 0;
        return new SeedSummary(mean, sd, v.Count);
    }
}
