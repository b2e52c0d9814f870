using PtqTool.Data;
using PtqTool.Onnx;

namespace PtqTool.Evaluation;

/// <summary>Runs every batch of a labelled set through a model and counts top-1 / top-5 hits.</summary>
public static class ModelScorer
{
    public sealed record Accuracy(int Samples, int Top1Hits, int Top5Hits)
    {
        public double Top1 => Samples == 0 ? 0 : 100.0 * Top1Hits / Samples;
        public double Top5 => Samples == 0 ? 0 : 100.0 * Top5Hits / Samples;
    }

    public static Accuracy Score(OrtRunner runner, IEnumerable<SampleBatch> batches)
    {
        int n = 0, top1 = 0, top5 = 0;
        foreach (var batch in batches)
        {
            var logits = runner.Run(batch.Input)[runner.OutputNames[0]];
            for (int i = 0; i < batch.Labels.Length; i++)
            {
                var row = logits.Data.AsSpan(i * logits.SampleSize, logits.SampleSize);
                int rank = RankOf(row, batch.Labels[i]);
                n++;
                if (rank == 0) top1++;
                if (rank < 5) top5++;
            }
        }
        return new Accuracy(n, top1, top5);
    }

    /// <summary>How many scores beat the label's (0 = top-1). Ties count against the label only when they come first.</summary>
    public static int RankOf(ReadOnlySpan<float> scores, int label)
    {
        float own = scores[label];
        int rank = 0;
        for (int j = 0; j < scores.Length; j++)
            if (scores[j] > own || (scores[j] == own && j < label)) rank++;
        return rank;
    }

    public static int ArgMax(ReadOnlySpan<float> scores)
    {
        int best = 0;
        for (int j = 1; j < scores.Length; j++) if (scores[j] > scores[best]) best = j;
        return best;
    }
}
