using PtqTool.Scales;
using PtqTool.Scales.Losses;
using ScottPlot;

namespace PtqTool.Reports;

/// <summary>MSQE(s) and QSin(s) of one sample set against s on one chart, with each curve's minimum marked.</summary>
public static class LossCurvePlot
{
    public sealed record Curve(double[] Scales, double[] Msqe, double[] QSin, double MsqeArgMin, double QSinArgMin, Curve? Zoom = null);

    /// <summary>Both curves on (0, 1.2·s_minmax] (the part where the minima and the MSQE ripples live).</summary>
    public static Curve Compute(float[] samples, IntegerRange segment, int points = 800)
    {
        var d = new SampleDistribution(samples);
        var spec = new QuantSpec(segment, Symmetric: true);
        double hi = 1.2 * new MinMaxLoss().Choose(d, spec).Scale;
        double msqeMin = new MsqeLoss().Choose(d, spec).Scale, qsinMin = new QSinLoss().Choose(d, spec).Scale;
        var zoom = Sample(d, segment, msqeMin * 0.85, msqeMin * 1.15, 1500, msqeMin, qsinMin);
        return Sample(d, segment, hi / points, hi, points, msqeMin, qsinMin) with { Zoom = zoom };
    }

    private static Curve Sample(SampleDistribution d, IntegerRange segment, double lo, double hi, int points, double msqeMin, double qsinMin)
    {
        var s = new double[points];
        var msqe = new double[points];
        var qsin = new double[points];
        int z = segment.SymmetricZeroPoint;
        for (int i = 0; i < points; i++)
        {
            s[i] = lo + (hi - lo) * i / (points - 1);
            msqe[i] = d.Msqe(s[i], z, segment);
            qsin[i] = d.QSin(s[i], z, segment);
        }
        return new Curve(s, msqe, qsin, msqeMin, qsinMin);
    }

    /// <summary>Local minima of the sampled MSQE curve (how rugged it is).</summary>
    public static int LocalMinima(double[] values)
    {
        int count = 0;
        for (int i = 1; i < values.Length - 1; i++) if (values[i] < values[i - 1] && values[i] < values[i + 1]) count++;
        return count;
    }

    /// <summary>
    /// Left: both curves over the whole scale range on a log10 error axis. Right: a linear zoom of ±15% around the MSQE
    /// minimum, where MSQE's many local minima show beside QSin's smooth curve. Written atomically as one PNG.
    /// </summary>
    public static void Save(Curve curve, string title, string path)
    {
        byte[] overview = Draw(curve, title, logY: true);
        byte[] zoom = curve.Zoom is null ? [] : Draw(curve.Zoom, $"zoom: {LocalMinima(curve.Zoom.Msqe)} local minima of MSQE in ±15%", logY: false);
        SideBySidePng.Save(overview, zoom, path);
    }

    private static byte[] Draw(Curve curve, string title, bool logY)
    {
        var plot = new Plot();
        Func<double[], double[]> y = logY ? Log10 : v => v;
        var m = plot.Add.ScatterLine(curve.Scales, y(curve.Msqe));
        m.LegendText = "MSQE(s) = E[(x − Q(x;s))²]";
        m.LineWidth = 1.5f;
        var q = plot.Add.ScatterLine(curve.Scales, y(curve.QSin));
        q.LegendText = "QSin(s) (smooth)";
        q.LineWidth = 2f;
        Mark(plot, curve.MsqeArgMin, y([Interpolate(curve, curve.MsqeArgMin, curve.Msqe)])[0], m.Color, "MSQE global min");
        Mark(plot, curve.QSinArgMin, y([Interpolate(curve, curve.QSinArgMin, curve.QSin)])[0], q.Color, "QSin min");
        plot.Title(title);
        plot.XLabel("scale s");
        plot.YLabel(logY ? "mean error (log scale)" : "mean error");
        if (logY)
        {
            var ticks = new ScottPlot.TickGenerators.NumericAutomatic
            {
                IntegerTicksOnly = true,
                LabelFormatter = v => $"1e{v:0}",
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            };
            plot.Axes.Left.TickGenerator = ticks;
        }
        plot.ShowLegend(Alignment.UpperRight);
        return plot.GetImageBytes(800, 560, ImageFormat.Png);
    }

    private static double[] Log10(double[] values) => values.Select(v => Math.Log10(Math.Max(v, 1e-30))).ToArray();

    private static void Mark(Plot plot, double x, double y, Color color, string label)
    {
        var marker = plot.Add.Marker(x, y, MarkerShape.FilledCircle, 10, color);
        marker.LegendText = $"{label} at s={x:G4}";
    }

    private static double Interpolate(Curve c, double x, double[] ys)
    {
        int i = Array.BinarySearch(c.Scales, x);
        if (i >= 0) return ys[i];
        i = ~i;
        if (i == 0) return ys[0];
        if (i >= ys.Length) return ys[^1];
        double t = (x - c.Scales[i - 1]) / (c.Scales[i] - c.Scales[i - 1]);
        return ys[i - 1] + t * (ys[i] - ys[i - 1]);
    }
}
