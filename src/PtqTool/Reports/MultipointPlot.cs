using System.Text.Json.Nodes;
using ScottPlot;

namespace PtqTool.Reports;

/// <summary>
/// `ptq plot multipoint`: accuracy against the multiply-adds second weight terms add, one line per model and weight
/// width, from `ptq quantize --report x.json` files (left: top-1, or agreement without labels; right: output SQNR).
/// </summary>
public static class MultipointPlot
{
    /// <param name="ExtraPercent">Multiply-adds added, percent of the one-term model's (0 without --multipoint).</param>
    public sealed record Point(string Series, double ExtraPercent, double Accuracy, double SqnrDb, double Fp32Accuracy, bool Labelled);

    public static IReadOnlyList<Point> Read(IEnumerable<string> reports) => reports.Select(path =>
    {
        if (!File.Exists(path)) throw new PtqException($"{path}: no such report");
        JsonNode r;
        try { r = JsonNode.Parse(File.ReadAllText(path)) ?? throw new PtqException($"{path}: empty report"); }
        catch (System.Text.Json.JsonException x) { throw new PtqException($"{path}: not a ptq JSON report ({x.Message})"); }
        var e = r["evaluation"] ?? throw new PtqException($"{path}: no evaluation section (quantize with --eval)");
        bool labelled = e["int8_top1"] is not null;
        string model = Path.GetFileNameWithoutExtension(r["model"]?["input"]?.GetValue<string>() ?? path);
        int bits = r["options"]?["weight_bits"]?.GetValue<int>() ?? 8;
        double extra = r["multipoint"] is JsonObject m ? 100 * m["extra_fraction"]!.GetValue<double>() : 0;
        return new Point($"{model} W{bits}A{r["options"]?["activation_bits"]?.GetValue<int>() ?? 8}", extra,
            labelled ? e["int8_top1"]!.GetValue<double>() : e["top1_agreement"]!.GetValue<double>(),
            e["output_sqnr_db"]!.GetValue<double>(), labelled ? e["fp32_top1"]!.GetValue<double>() : 100, labelled);
    }).ToList();

    public static void Save(IReadOnlyList<Point> points, string path)
    {
        if (points.Count == 0) throw new PtqException("ptq plot multipoint: no reports given");
        SideBySidePng.Save(Chart(points, p => p.Accuracy, points[0].Labelled ? "top-1 (%)" : "top-1 agreement with FP32 (%)", true),
            Chart(points, p => p.SqnrDb, "output SQNR (dB)", false), path);
    }

    private static byte[] Chart(IReadOnlyList<Point> points, Func<Point, double> y, string label, bool withFp32)
    {
        var plot = new Plot();
        foreach (var series in points.GroupBy(p => p.Series).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var ordered = series.OrderBy(p => p.ExtraPercent).ToList();
            var line = plot.Add.Scatter(ordered.Select(p => p.ExtraPercent).ToArray(), ordered.Select(y).ToArray());
            line.LegendText = series.Key;
            line.MarkerSize = 7;
        }
        if (withFp32 && points[0].Labelled)
            foreach (var model in points.GroupBy(p => p.Series.Split(' ')[0]))
            {
                var fp32 = plot.Add.HorizontalLine(model.First().Fp32Accuracy);
                fp32.LegendText = $"{model.Key} FP32 {model.First().Fp32Accuracy:0.00}%";
                fp32.LinePattern = LinePattern.Dotted;
            }
        plot.Title(withFp32 ? "accuracy vs added multiply-adds" : "output SQNR vs added multiply-adds");
        plot.XLabel("multiply-adds added by second terms (% of the model's)");
        plot.YLabel(label);
        plot.ShowLegend(Alignment.LowerRight);
        return plot.GetImageBytes(760, 540, ImageFormat.Png);
    }
}
