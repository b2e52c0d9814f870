using PtqTool.Onnx;

namespace PtqTool.Reports;

/// <summary>Two rendered charts placed left and right on a white canvas, written atomically as one PNG.</summary>
public static class SideBySidePng
{
    /// <param name="right">Empty for a single chart.</param>
    public static void Save(byte[] left, byte[] right, string path)
    {
        using var a = SkiaSharp.SKBitmap.Decode(left);
        using var b = right.Length > 0 ? SkiaSharp.SKBitmap.Decode(right) : null;
        using var bitmap = new SkiaSharp.SKBitmap(a.Width + (b?.Width ?? 0), Math.Max(a.Height, b?.Height ?? 0));
        using (var canvas = new SkiaSharp.SKCanvas(bitmap))
        {
            canvas.Clear(SkiaSharp.SKColors.White);
            canvas.DrawBitmap(a, 0, 0);
            if (b is not null) canvas.DrawBitmap(b, a.Width, 0);
        }
        using var data = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        AtomicFile.WriteAllBytes(path, data.Span);
    }
}
