using PtqTool.Onnx;

namespace PtqTool.Tests.Onnx;

/// <summary>Multiply-adds per sample, from ONNX Runtime's shapes, against the textbook formulas for each layer.</summary>
public class MacCountTests
{
    private static int OutSize(int n, int k, int stride, int pad, int dilation) => (n + 2 * pad - dilation * (k - 1) - 1) / stride + 1;

    [Fact]
    public void Conv_convtranspose_gemm_and_matmul_count_what_the_formulas_give()
    {
        const int batch = 3;
        var (model, g) = TestModels.WithFloatInput("macs", [batch, 3, 9, 9]);
        var rng = new Random(1);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        g.AddInitializer(TensorData.FromFloats("wa", [8, 3, 3, 3], Random(8 * 27)));
        g.AddInitializer(TensorData.FromFloats("wb", [8, 4, 3, 3], Random(8 * 36)));
        g.AddInitializer(TensorData.FromFloats("wt", [8, 4, 2, 2], Random(8 * 16)));
        g.AddInitializer(TensorData.FromFloats("wm", [10, 6], Random(60)));
        g.AddInitializer(TensorData.FromInt64("flat", [2], [batch, -1]));
        g.AddNode(NodeAttributes.Node("Conv", "a", ["x", "wa"], ["ya"], NodeAttributes.Ints("strides", [2, 2]), NodeAttributes.Ints("pads", [1, 1, 1, 1])));
        g.AddNode(NodeAttributes.Node("Conv", "b", ["ya", "wb"], ["yb"], NodeAttributes.Int("group", 2), NodeAttributes.Ints("dilations", [2, 2]), NodeAttributes.Ints("pads", [2, 2, 2, 2])));
        g.AddNode(NodeAttributes.Node("ConvTranspose", "t", ["yb", "wt"], ["yt"], NodeAttributes.Ints("strides", [2, 2])));
        g.AddNode(NodeAttributes.Node("MatMul", "m", ["yt", "wm"], ["ym"]));
        g.AddNode(NodeAttributes.Node("Reshape", "r", ["ym", "flat"], ["yr"]));
        int a = OutSize(9, 3, 2, 1, 1), b = OutSize(a, 3, 1, 2, 2), t = (b - 1) * 2 + 2;
        g.AddInitializer(TensorData.FromFloats("wg", [5, 4 * t * 6], Random(5 * 4 * t * 6)));
        g.AddNode(NodeAttributes.Node("Gemm", "gemm", ["yr", "wg"], ["out"], NodeAttributes.Int("transB", 1)));
        g.AddOutput("out");

        var counted = MacCount.PerSample(model, new FloatTensor(Random(batch * 3 * 81), [batch, 3, 9, 9])).ToDictionary(p => p.Node.Name, p => p.Macs);

        Assert.Equal(5, a);
        Assert.Equal(8L * a * a * (3 * 3 * 3), counted["a"]);            // Cout × H × W × Cin·k²
        Assert.Equal(8L * b * b * (4 * 3 * 3), counted["b"]);            // Cin/group = 4
        Assert.Equal(8L * b * b * (4 * 2 * 2), counted["t"]);            // every input element meets Cout/group × k² weights
        Assert.Equal(4L * t * 6 * 10, counted["m"]);                     // [4, t, 10] × [10, 6]
        Assert.Equal(5L * 4 * t * 6, counted["gemm"]);                   // N × K
    }
}
