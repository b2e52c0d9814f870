using SkiaSharp;

namespace PtqTool.Data;

/// <summary>Decodes an image file with SkiaSharp and turns it into one preprocessed sample.</summary>
public static class ImageDecoder
{
    /// <summary>Writes the preprocessed sample into <paramref name="destination"/> (length = channels×height×width).</summary>
    public static void Decode(string path, Preprocessing p, Span<float> destination)
    {
        using var bitmap = DecodeRgba(path);
        using var sized = Fit(bitmap, p, path);
        WritePixels(sized, p, destination);
    }

    /// <summary>Largest image decoded (width × height), checked from the header before any pixel is decoded.</summary>
    public const long MaxPixels = 64L * 1024 * 1024;

    private static SKBitmap DecodeRgba(string path)
    {
        using var codec = SKCodec.Create(path, out var result);
        if (codec is null)
            throw new PtqException($"{path}: cannot decode image ({result})");
        long pixels = (long)codec.Info.Width * codec.Info.Height;
        if (pixels > MaxPixels || codec.Info.Width <= 0 || codec.Info.Height <= 0)
            throw new PtqException($"{path}: image is {codec.Info.Width}x{codec.Info.Height}; ptq decodes at most {MaxPixels / (1024 * 1024)} megapixels");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var bitmap = new SKBitmap(info);
        var status = codec.GetPixels(info, bitmap.GetPixels());
        if (status is not (SKCodecResult.Success or SKCodecResult.IncompleteInput) || info.Width == 0)
        {
            bitmap.Dispose();
            throw new PtqException($"{path}: cannot decode image ({status})");
        }
        if (status == SKCodecResult.IncompleteInput)
        {
            bitmap.Dispose();
            throw new PtqException($"{path}: image is truncated");
        }
        return bitmap;
    }

    private static SKBitmap Fit(SKBitmap source, Preprocessing p, string path)
    {
        if (source.Width == p.Width && source.Height == p.Height) return source.Copy();
        var sampling = new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.None);
        switch (p.Resize)
        {
            case "none":
                throw new PtqException($"{path}: image is {source.Width}x{source.Height}, the model takes {p.Width}x{p.Height} (use --resize stretch or --resize N to resize)");
            case "stretch":
                return source.Resize(new SKImageInfo(p.Width, p.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul), sampling);
            default:
            {
                int shorter = int.Parse(p.Resize, System.Globalization.CultureInfo.InvariantCulture);
                double k = (double)shorter / Math.Min(source.Width, source.Height);
                int w = Math.Max(p.Width, (int)Math.Round(source.Width * k));
                int h = Math.Max(p.Height, (int)Math.Round(source.Height * k));
                using var resized = source.Resize(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul), sampling);
                var cropped = new SKBitmap(new SKImageInfo(p.Width, p.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
                resized.ExtractSubset(cropped, SKRectI.Create((w - p.Width) / 2, (h - p.Height) / 2, p.Width, p.Height));
                return cropped.Copy();
            }
        }
    }

    private static void WritePixels(SKBitmap bitmap, Preprocessing p, Span<float> destination)
    {
        int w = p.Width, h = p.Height, c = p.ChannelCount;
        if (destination.Length != w * h * c)
            throw new ArgumentException("destination has the wrong length", nameof(destination));
        ReadOnlySpan<byte> px = bitmap.GetPixelSpan();
        int stride = bitmap.RowBytes;
        bool nhwc = p.Layout == "nhwc";
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int o = y * stride + 4 * x;
                float r = px[o], g = px[o + 1], b = px[o + 2];
                for (int ch = 0; ch < c; ch++)
                {
                    float v = p.Channels switch
                    {
                        "gray" => r == g && g == b ? r : 0.299f * r + 0.587f * g + 0.114f * b,
                        "bgr" => ch == 0 ? b : ch == 1 ? g : r,
                        _ => ch == 0 ? r : ch == 1 ? g : b,
                    };
                    int index = nhwc ? (y * w + x) * c + ch : (ch * h + y) * w + x;
                    destination[index] = (v / p.Scale - p.MeanOf(ch)) / p.StdOf(ch);
                }
            }
        }
    }
}
