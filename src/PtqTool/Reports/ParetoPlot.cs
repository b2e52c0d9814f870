using PtqTool.Pipeline;
using ScottPlot;

namespace PtqTool.Reports;

/// <summary>
/// `ptq pareto --plot`: left, the exact frontier Σ Ω against average weight bits (log scale) with the uniform widths
/// marked; right, the measured accuracy (top-1, or output SQNR without labels) of the chosen mixed points and the
/// uniform ones. One PNG, written atomically.
/// </summary>
public static class ParetoPlot
{
    public static void Save(ParetoJob.Result r, string title, string path)
    {
        SideBySidePng.Save(Frontier(r, title), Measured(r), path);
    }

    private static double Log(double v) => Math.Log10(Math.Max(v, 1e-12));

    private static byte[] Frontier(ParetoJob.Result r, string title)
    {
        var plot = new Plot();
        var xs = r.Frontier.Select(p => (double)p.Size / r.Parameters).ToArray();
        var line = plot.Add.ScatterLine(xs, r.Frontier.Select(p => Log(p.Sensitivity)).ToArray());
        line.LegendText = $"exact frontier ({r.Frontier.Count} points)";
        line.LineWidth = 2f;
        var uniform = r.Points.Where(p => p.Uniform).ToList();
        var u = plot.Add.ScatterPoints(uniform.Select(p => p.AverageBits).ToArray(), uniform.Select(p => Log(p.Sensitivity)).ToArray());
        u.LegendText = "uniform widths";
        u.MarkerSize = 10;
        u.MarkerShape = MarkerShape.OpenSquare;
        var mixed = r.Points.Where(p => !p.Uniform).ToList();
        var m = plot.Add.ScatterPoints(mixed.Select(p => p.AverageBits).ToArray(), mixed.Select(p => Log(p.Sensitivity)).ToArray());
        m.LegendText = "measured mixed points";
        m.MarkerSize = 8;
        plot.Title(title);
        plot.XLabel("average weight bits (Σ P·k / Σ P)");
        plot.YLabel("Σ Ω, summed KL (log10)");
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = v => $"1e{v:0.#}" };
        plot.ShowLegend(Alignment.UpperRight);
        return plot.GetImageBytes(760, 540, ImageFormat.Png);
    }

    private static byte[] Measured(ParetoJob.Result r)
    {
        var plot = new Plot();
        Func<ParetoJob.Point, double> y = r.Labelled ? p => p.Outputs.Int8Top1 : p => p.Outputs.SqnrDb;
        var mixed = r.Points.Where(p => !p.Uniform).OrderBy(p => p.AverageBits).ToList();
        var m = plot.Add.Scatter(mixed.Select(p => p.AverageBits).ToArray(), mixed.Select(y).ToArray());
        m.LegendText = "mixed (Pareto choice)";
        m.MarkerSize = 8;
        var uniform = r.Points.Where(p => p.Uniform).OrderBy(p => p.AverageBits).ToList();
        var u = plot.Add.Scatter(uniform.Select(p => p.AverageBits).ToArray(), uniform.Select(y).ToArray());
        u.LegendText = "uniform widths";
        u.MarkerSize = 10;
        u.MarkerShape = MarkerShape.OpenSquare;
        u.LinePattern = LinePattern.Dashed;
        if (r.Labelled)
        {
            var fp32 = plot.Add.HorizontalLine(r.Fp32Top1);
            fp32.LegendText = $"FP32 {r.Fp32Top1:0.00}%";
            fp32.LinePattern = LinePattern.Dotted;
        }
        plot.Title(r.Labelled ? "measured top-1" : "measured output SQNR");
        plot.XLabel("average weight bits");
        plot.YLabel(r.Labelled ? "top-1 (%)" : "output SQNR (dB)");
        plot.ShowLegend(Alignment.LowerRight);
        return plot.GetImageBytes(760, 540, ImageFormat.Png);
    }
}
