using System.Text;
using PtqTool.Scales;
using PtqTool.Scales.Losses;

namespace PtqTool.Reports;

/// <summary>MSQE at the scale each loss chooses, on synthetic distributions and bit widths: the table in docs/quantization-math.md.</summary>
public static class LossComparisonTable
{
    public sealed record Row(string Distribution, int Bits, IReadOnlyDictionary<string, double> Msqe, IReadOnlyDictionary<string, double> Scale);

    public static List<Row> Compute(IEnumerable<string> distributions, IEnumerable<int> bits, int samples, int seed)
    {
        var rows = new List<Row>();
        foreach (string dist in distributions)
        {
            var values = SyntheticSamples.Draw(dist, samples, seed);
            var d = new SampleDistribution(values);
            foreach (int b in bits)
            {
                var spec = new QuantSpec(IntegerRange.Signed(b), Symmetric: true);
                var msqe = new Dictionary<string, double>();
                var scale = new Dictionary<string, double>();
                foreach (string name in ScaleLosses.Names)
                {
                    var p = ScaleLosses.Create(name).Choose(d, spec);
                    scale[name] = p.Scale;
                    msqe[name] = d.Msqe(p.Scale, p.ZeroPoint, spec.Range);
                }
                rows.Add(new Row(dist, b, msqe, scale));
            }
        }
        return rows;
    }

    public static string ToMarkdown(IReadOnlyList<Row> rows, int samples, int seed)
    {
        var w = new StringBuilder();
        w.AppendLine($"MSQE at the chosen scale (symmetric, signed b-bit segment, {samples:N0} samples, seed {seed}); in brackets: ratio to the msqe optimum.");
        w.AppendLine();
        w.AppendLine("| distribution | bits | " + string.Join(" | ", ScaleLosses.Names) + " |");
        w.AppendLine("|---|---|" + string.Concat(ScaleLosses.Names.Select(_ => "---|")));
        foreach (var r in rows)
        {
            double best = r.Msqe["msqe"];
            w.AppendLine($"| {r.Distribution} | {r.Bits} | " + string.Join(" | ", ScaleLosses.Names.Select(n => $"{r.Msqe[n]:0.000e+00} ({r.Msqe[n] / best:0.000})")) + " |");
        }
        return w.ToString();
    }
}
