using PtqTool.Evaluation;
using PtqTool.Onnx;

namespace PtqTool.Tests.Evaluation;

public class OutputLossTests
{
    [Fact]
    public void KlOfLogitsAndOfProbabilitiesByTheFormula()
    {
        var f = new FloatTensor([1f, 2f, 0.5f, -1f, 0f, 3f], [2, 3]);
        var q = new FloatTensor([1.2f, 1.8f, 0.4f, -1f, 0.3f, 2.5f], [2, 3]);
        double expected = 0;
        for (int r = 0; r < 2; r++)
        {
            var p = Softmax(f.Data.Skip(3 * r).Take(3).ToArray());
            var s = Softmax(q.Data.Skip(3 * r).Take(3).ToArray());
            expected += Enumerable.Range(0, 3).Sum(c => p[c] * Math.Log(p[c] / s[c]));
        }
        var loss = new OutputLoss(OutputLossKind.KL);
        loss.Add(f, q);
        Assert.Equal(expected / 2, loss.Value, 10);

        // Rows that already are probabilities are taken as they are.
        var probs = new OutputLoss(OutputLossKind.KL);
        probs.Add(new FloatTensor([0.5f, 0.25f, 0.25f], [1, 3]), new FloatTensor([0.25f, 0.5f, 0.25f], [1, 3]));
        Assert.Equal(0.5 * Math.Log(2) + 0.25 * Math.Log(0.5), probs.Value, 6);
    }

    [Fact]
    public void RelativeMseOverBatchesIsTheNoiseToSignalRatio()
    {
        var loss = new OutputLoss(OutputLossKind.RelativeMse);
        loss.Add(new FloatTensor([1f, 2f], [1, 2]), new FloatTensor([1.5f, 2f], [1, 2]));
        loss.Add(new FloatTensor([-2f, 0f], [1, 2]), new FloatTensor([-2f, 1f], [1, 2]));
        Assert.Equal((0.25 + 1) / (1 + 4 + 4), loss.Value, 12);
    }

    [Theory]
    [InlineData(new[] { 4, 10 }, OutputLossKind.KL)]
    [InlineData(new[] { -1, 1000 }, OutputLossKind.KL)]
    [InlineData(new[] { 4, 1 }, OutputLossKind.RelativeMse)]
    [InlineData(new[] { 1, 40, 6625 }, OutputLossKind.RelativeMse)]
    [InlineData(new[] { 1, 1, 96, 96 }, OutputLossKind.RelativeMse)]
    public void KlForClassScoresOnly(int[] shape, OutputLossKind kind) => Assert.Equal(kind, OutputLoss.For(shape));

    private static double[] Softmax(float[] x)
    {
        double max = x.Max();
        var e = x.Select(v => Math.Exp(v - max)).ToArray();
        return e.Select(v => v / e.Sum()).ToArray();
    }
}
