using PtqTool.Evaluation;
using PtqTool.Onnx;

namespace PtqTool.Tests.Evaluation;

public class SentenceEmbeddingTests
{
    [Fact]
    public void Mean_pooling_averages_the_unmasked_tokens_only()
    {
        var rng = new Random(4);
        int b = 3, s = 5, h = 4;
        var hidden = new FloatTensor(Enumerable.Range(0, b * s * h).Select(_ => (float)rng.NextDouble()).ToArray(), [b, s, h]);
        var mask = new FloatTensor([1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0], [b, s]);
        var pooled = SentenceEmbedding.MeanPool(hidden, mask);
        int[] lengths = [3, 5, 1];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < h; j++)
            {
                double sum = 0;
                for (int t = 0; t < lengths[i]; t++) sum += hidden.Data[(i * s + t) * h + j];
                Assert.Equal(sum / lengths[i], pooled.Data[i * h + j], 6);
            }
    }

    [Fact]
    public void Spearman_matches_the_rank_difference_formula_without_ties()
    {
        var rng = new Random(9);
        var a = Enumerable.Range(0, 50).Select(_ => rng.NextDouble()).ToArray();
        var c = a.Select(v => v + 0.3 * rng.NextDouble()).ToArray();
        var ra = Statistics.Ranks(a);
        var rc = Statistics.Ranks(c);
        int n = a.Length;
        double d2 = ra.Zip(rc, (x, y) => (x - y) * (x - y)).Sum();
        Assert.Equal(1 - 6 * d2 / (n * ((double)n * n - 1)), Statistics.Spearman(a, c), 10);
        Assert.Equal([1.5, 1.5, 3], Statistics.Ranks([2.0, 2.0, 5.0]));
    }

    [Fact]
    public void Pair_ranking_is_one_for_unchanged_outputs_and_falls_when_similarities_reorder()
    {
        var rng = new Random(1);
        var same = new PairRanking();
        var shuffled = new PairRanking();
        var rows = Enumerable.Range(0, 12).Select(_ => Enumerable.Range(0, 6).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray()).ToList();
        for (int i = 0; i < rows.Count; i++)
        {
            same.Add(rows[i], rows[i].Select(v => 3 * v).ToArray());
            shuffled.Add(rows[i], rows[(i + 5) % rows.Count].Select((v, j) => j % 2 == 0 ? v : -v).ToArray());
        }
        Assert.Equal(1, same.Spearman(), 10);
        Assert.True(shuffled.Spearman() < 0.9);
    }
}
