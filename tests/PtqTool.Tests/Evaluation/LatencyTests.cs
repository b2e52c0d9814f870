using PtqTool.Evaluation;

namespace PtqTool.Tests.Evaluation;

public class LatencyTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(30)]
    public void Median_has_as_many_values_below_it_as_above(int count)
    {
        var rng = new Random(count);
        var values = Enumerable.Range(0, count).Select(_ => rng.NextDouble() * 100).ToArray();
        double median = Latency.Median(values);
        Assert.Equal(values.Count(v => v < median), values.Count(v => v > median));
        // Even counts: the midpoint of the two middle values, which are the nearest values on either side.
        if (count % 2 == 0)
            Assert.Equal((values.Where(v => v < median).Max() + values.Where(v => v > median).Min()) / 2, median, 12);
        else
            Assert.Contains(median, values);
    }
}
