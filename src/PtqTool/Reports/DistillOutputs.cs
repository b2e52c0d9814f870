using PtqTool.Data;
using PtqTool.Onnx;
using ScottPlot;
using SkiaSharp;

namespace PtqTool.Reports;

/// <summary>Writes a distilled batch: one .npy per sample, PNG previews for image inputs, and the loss curve.</summary>
public static class DistillOutputs
{
    public static void WriteSamples(FloatTensor samples, string folder)
    {
        Directory.CreateDirectory(folder);
        int per = samples.SampleSize;
        int[] shape = samples.Shape[1..];
        for (int i = 0; i < samples.Batch; i++)
            AtomicFile.WriteAllBytes(Path.Combine(folder, $"sample-{i:D4}.npy"), NpyReader.Write(samples.Data.AsSpan(i * per, per), shape));
    }

    /// <summary>Undoes the normalization ((x·std + mean)·scale, clipped to 0..255) and writes each sample as an image.</summary>
    public static int WritePreviews(FloatTensor samples, Preprocessing p, string folder)
    {
        int[] shape = samples.Shape[1..];
        if (shape.Length != 3 || FloatTensor.Count(shape) != p.Width * p.Height * p.ChannelCount) return 0;
        int per = samples.SampleSize;
        Span<byte> rgb = stackalloc byte[3];
        for (int i = 0; i < samples.Batch; i++)
        {
            using var bitmap = new SKBitmap(p.Width, p.Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
            for (int y = 0; y < p.Height; y++)
                for (int x = 0; x < p.Width; x++)
                {
                    for (int c = 0; c < 3; c++)
                    {
                        int ch = p.ChannelCount == 1 ? 0 : p.Channels == "bgr" ? 2 - c : c;
                        int index = p.Layout == "nhwc" ? (y * p.Width + x) * p.ChannelCount + ch : (ch * p.Height + y) * p.Width + x;
                        float v = samples.Data[i * per + index];
                        float pixel = (v * p.StdOf(ch) + p.MeanOf(ch)) * p.Scale;
                        rgb[c] = (byte)Math.Clamp(MathF.Round(pixel), 0, 255);
                    }
                    bitmap.SetPixel(x, y, new SKColor(rgb[0], rgb[1], rgb[2]));
                }
            using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            AtomicFile.WriteAllBytes(Path.Combine(folder, $"preview-{i:D4}.png"), data.Span);
        }
        return samples.Batch;
    }

    public static void WriteLossCurve(double[] losses, string title, string path)
    {
        var plot = new Plot();
        var xs = Enumerable.Range(1, losses.Length).Select(i => (double)i).ToArray();
        var line = plot.Add.ScatterLine(xs, losses.Select(l => Math.Log10(Math.Max(l, 1e-30))).ToArray());
        line.LegendText = "BN statistics loss";
        plot.Title(title);
        plot.XLabel("iteration");
        plot.YLabel("loss (log scale)");
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            IntegerTicksOnly = true,
            LabelFormatter = v => $"1e{v:0}",
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
        };
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(800, 500, ImageFormat.Png));
    }
}
