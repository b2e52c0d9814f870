using PtqTool.Data;
using PtqTool.Pipeline;
using SkiaSharp;

namespace PtqTool.Tests.Data;

public class PreprocessingTests
{
    private static string WriteImage(string dir, int width, int height, Func<int, int, SKColor> color)
    {
        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        for (int y = 0; y < height; y++) for (int x = 0; x < width; x++) bitmap.SetPixel(x, y, color(x, y));
        string path = Path.Combine(dir, $"img-{width}x{height}.png");
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
        return path;
    }

    [Fact]
    public void Rgb_nchw_normalization_matches_the_formula_per_channel()
    {
        string dir = Repo.TempDir();
        string path = WriteImage(dir, 2, 2, (x, y) => new SKColor((byte)(10 + x), (byte)(100 + y), 200));
        var p = new Preprocessing { Width = 2, Height = 2, Channels = "rgb", Layout = "nchw", Scale = 255, Mean = [0.5f, 0.4f, 0.3f], Std = [0.2f, 0.25f, 0.5f], Resize = "none" };
        var sample = new float[12];
        ImageDecoder.Decode(path, p, sample);
        // Red of pixel (x=1, y=0) sits at channel 0, index 1: (11/255 − 0.5)/0.2.
        Assert.Equal((11 / 255f - 0.5f) / 0.2f, sample[1], 5);
        // Green of pixel (x=0, y=1): channel 1, index 4 + 2.
        Assert.Equal((101 / 255f - 0.4f) / 0.25f, sample[6], 5);
        Assert.Equal((200 / 255f - 0.3f) / 0.5f, sample[8 + 3], 5);
        var bgr = new float[12];
        ImageDecoder.Decode(path, p with { Channels = "bgr", Mean = [0f], Std = [1f] }, bgr);
        Assert.Equal(200 / 255f, bgr[0], 5); // blue first
        var nhwc = new float[12];
        ImageDecoder.Decode(path, p with { Layout = "nhwc", Mean = [0f], Std = [1f] }, nhwc);
        // NHWC: pixel (0, 0)'s three channels come first.
        Assert.Equal(10 / 255f, nhwc[0], 5);
        Assert.Equal(100 / 255f, nhwc[1], 5);
        Assert.Equal(200 / 255f, nhwc[2], 5);
    }

    [Fact]
    public void Shorter_side_resize_then_centre_crop_keeps_the_middle()
    {
        string dir = Repo.TempDir();
        // 8×4 image: left half black, right half white; shorter side 4 → 4, crop 4×4 from the middle: columns 2..5.
        string path = WriteImage(dir, 8, 4, (x, y) => x < 4 ? SKColors.Black : SKColors.White);
        var p = PreprocessingResolver.Resolve("none.onnx", [1, 1, 4, 4], new PreprocessingOverrides { Preset = "none", Resize = "4", Crop = "4", Channels = "gray" });
        var sample = new float[16];
        ImageDecoder.Decode(path, p, sample);
        Assert.Equal(0f, sample[0]);      // column 2: black
        Assert.Equal(0f, sample[1]);      // column 3: black
        Assert.Equal(255f, sample[2]);    // column 4: white (scale 1 under the "none" preset)
        Assert.Equal(255f, sample[3]);
        Assert.Throws<PtqException>(() => PreprocessingResolver.Resolve("none.onnx", [1, 1, 4, 4], new PreprocessingOverrides { Size = "8", Crop = "4" }));
    }
}
