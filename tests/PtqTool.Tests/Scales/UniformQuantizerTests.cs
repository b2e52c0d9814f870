using PtqTool.Scales;

namespace PtqTool.Tests.Scales;

public class UniformQuantizerTests
{
    [Theory]
    [InlineData(2.5, 2)]
    [InlineData(3.5, 4)]
    [InlineData(-2.5, -2)]
    [InlineData(-0.5, 0)]
    [InlineData(1000, 127)]
    [InlineData(-1000, -128)]
    public void Quantize_rounds_half_to_even_and_saturates(double xOverS, int expected)
    {
        Assert.Equal(expected, UniformQuantizer.Quantize(xOverS * 0.1, 0.1, 0, IntegerRange.Int8));
    }

    [Theory]
    [InlineData(8)]
    [InlineData(4)]
    [InlineData(2)]
    public void Vectorized_msqe_equals_a_plain_loop(int bits)
    {
        var x = SyntheticSamples.Draw("laplace", 1001, 3);
        var r = IntegerRange.Signed(bits);
        foreach (double s in new[] { 0.003, 0.02, 0.11, 0.7 })
        {
            double reference = 0;
            foreach (float v in x)
            {
                double e = v - UniformQuantizer.FakeQuantize(v, s, 0, r);
                reference += e * e;
            }
            reference /= x.Length;
            Assert.Equal(reference, UniformQuantizer.Msqe(x, s, 0, r), 1e-6 * reference + 1e-12);
        }
    }

    [Fact]
    public void Asymmetric_zero_point_shifts_the_grid()
    {
        var r = IntegerRange.UInt8;
        // s = 0.1, z = 10: representable values are 0.1·(q − 10), q in [0,255] → [−1.0, 24.5].
        Assert.Equal(-1.0, UniformQuantizer.FakeQuantize(-5, 0.1, 10, r), 9);
        Assert.Equal(24.5, UniformQuantizer.FakeQuantize(99, 0.1, 10, r), 9);
        Assert.Equal(0.3, UniformQuantizer.FakeQuantize(0.29, 0.1, 10, r), 9);
    }

    [Fact]
    public void Ranges_parse_and_report_their_zero_points()
    {
        Assert.Equal(new IntegerRange(-8, 7), IntegerRange.Parse("-8,7"));
        Assert.Equal(new IntegerRange(-2, 1), IntegerRange.Signed(2));
        Assert.Equal(new IntegerRange(0, 15), IntegerRange.Parse("uint4"));
        Assert.Equal(128, IntegerRange.UInt8.SymmetricZeroPoint);
        Assert.Equal(0, IntegerRange.Int8.SymmetricZeroPoint);
        Assert.Throws<PtqException>(() => IntegerRange.Parse("7,-8"));
    }
}
