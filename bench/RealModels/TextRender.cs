using SkiaSharp;

namespace PtqTool.RealModels;

/// <summary>Renders synthetic text with a system font: words of letters and digits, dark ink on a light, slightly noisy paper.</summary>
public sealed class TextRender(string fontPath, int seed)
{
    private readonly Random _rng = new(seed);
    private readonly SKTypeface _face = SKTypeface.FromFile(fontPath) ?? throw new PtqException($"{fontPath}: cannot load font");
    private const string Letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    private const string Digits = "0123456789";

    public string Words(int minChars, int maxChars)
    {
        int length = _rng.Next(minChars, maxChars + 1);
        var chars = new char[length];
        for (int i = 0; i < length; i++)
            chars[i] = i > 0 && i < length - 1 && _rng.NextDouble() < 0.12 && chars[i - 1] != ' ' ? ' '
                : _rng.NextDouble() < 0.2 ? Digits[_rng.Next(Digits.Length)] : Letters[_rng.Next(Letters.Length)];
        return new string(chars);
    }

    /// <summary>A text line of the given size; the text is scaled to fill it, left-aligned with a random margin.</summary>
    public SKBitmap Line(string text, int width, int height)
    {
        var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var canvas = new SKCanvas(bitmap);
        Paper(canvas, width, height);
        float size = height * (0.55f + 0.25f * (float)_rng.NextDouble());
        using var font = new SKFont(_face, size);
        float measured = font.MeasureText(text);
        if (measured > width * 0.94f) { font.Size = size * width * 0.94f / measured; measured = font.MeasureText(text); }
        using var ink = Ink();
        float x = (float)_rng.NextDouble() * Math.Max(1, width - measured - 2);
        canvas.DrawText(text, x, height / 2f + font.Size * 0.35f, SKTextAlign.Left, font, ink);
        return bitmap;
    }

    /// <summary>
    /// A recognizer input as PaddleOCR's own pipeline makes one: a tight crop of one text line on clean paper, scaled to
    /// the height and placed left, the rest of the width padded with the value that normalizes to 0 (mid-gray).
    /// </summary>
    public SKBitmap Crop(string text, int width, int height)
    {
        var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(new SKColor(128, 128, 128));
        using var font = new SKFont(_face, height * 0.7f);
        float measured = font.MeasureText(text);
        float margin = height * 0.1f;
        if (measured + 2 * margin > width) { font.Size *= (width - 2 * margin) / measured; measured = font.MeasureText(text); }
        byte shade = (byte)_rng.Next(215, 256);
        using var paper = new SKPaint { Color = new SKColor(shade, (byte)Math.Max(0, shade - _rng.Next(0, 15)), (byte)Math.Max(0, shade - _rng.Next(0, 25))) };
        canvas.DrawRect(0, 0, Math.Min(width, measured + 2 * margin), height, paper);
        using var ink = Ink();
        canvas.DrawText(text, margin, height / 2f + font.Size * 0.35f, SKTextAlign.Left, font, ink);
        return bitmap;
    }

    /// <summary>A page with a few lines of text at random places (for the detector).</summary>
    public SKBitmap Page(int width, int height)
    {
        var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var canvas = new SKCanvas(bitmap);
        Paper(canvas, width, height);
        int lines = _rng.Next(3, 7);
        float y = height * 0.12f;
        using var ink = Ink();
        for (int l = 0; l < lines && y < height * 0.95f; l++)
        {
            using var font = new SKFont(_face, height * (0.05f + 0.05f * (float)_rng.NextDouble()));
            string text = Words(4, 18);
            float x = (float)_rng.NextDouble() * width * 0.3f;
            canvas.DrawText(text, x, y + font.Size, SKTextAlign.Left, font, ink);
            y += font.Size * (1.6f + (float)_rng.NextDouble());
        }
        return bitmap;
    }

    private void Paper(SKCanvas canvas, int width, int height)
    {
        byte shade = (byte)_rng.Next(210, 256);
        canvas.Clear(new SKColor(shade, (byte)Math.Max(0, shade - _rng.Next(0, 15)), (byte)Math.Max(0, shade - _rng.Next(0, 25))));
        using var speck = new SKPaint { Color = new SKColor(0, 0, 0, 40) };
        for (int i = 0; i < width * height / 300; i++) canvas.DrawPoint(_rng.Next(width), _rng.Next(height), speck);
    }

    private SKPaint Ink() => new() { Color = new SKColor((byte)_rng.Next(0, 60), (byte)_rng.Next(0, 60), (byte)_rng.Next(0, 80)), IsAntialias = true };

    public static void Save(SKBitmap bitmap, string path)
    {
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    public static SKBitmap Rotated180(SKBitmap source)
    {
        var r = new SKBitmap(source.Width, source.Height, source.ColorType, source.AlphaType);
        using var canvas = new SKCanvas(r);
        canvas.RotateDegrees(180, source.Width / 2f, source.Height / 2f);
        canvas.DrawBitmap(source, 0, 0);
        return r;
    }
}
