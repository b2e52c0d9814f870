using PtqTool.Data;
using PtqTool.Onnx;

namespace PtqTool.Evaluation;

/// <summary>
/// Sentence embeddings of a BERT-class encoder: the mean of its token outputs [batch, sequence, hidden] over the tokens
/// its attention mask keeps (sentence-transformers' mean pooling). Evaluation compares these, not the padded token grid.
/// </summary>
public static class SentenceEmbedding
{
    /// <summary>The attention-mask input to pool with, when the model has one and its first output is [batch, sequence, hidden].</summary>
    public static string? MaskInput(IReadOnlyList<InputSpec> inputs, int[] outputShape) =>
        outputShape.Length == 3 && inputs.Count > 1
            ? inputs.FirstOrDefault(i => !i.IsFloat && i.DeclaredShape.Length == 2 && TextEncoder.RoleOf(i.Name) == TextEncoder.Role.Mask)?.Name
            : null;

    /// <summary>Σ_t mask[b,t]·hidden[b,t,:] / Σ_t mask[b,t] per sample (all-zero masks give zeros).</summary>
    public static FloatTensor MeanPool(FloatTensor hidden, FloatTensor mask)
    {
        if (hidden.Shape.Length != 3 || mask.Shape.Length != 2 || mask.Shape[0] != hidden.Shape[0] || mask.Shape[1] != hidden.Shape[1])
            throw new PtqException($"mean pooling needs [batch, sequence, hidden] outputs and a [batch, sequence] mask; got {hidden} and {mask}");
        int b = hidden.Shape[0], s = hidden.Shape[1], h = hidden.Shape[2];
        var pooled = new float[b * h];
        var sum = new double[h];
        for (int i = 0; i < b; i++)
        {
            Array.Clear(sum);
            double count = 0;
            for (int t = 0; t < s; t++)
            {
                float m = mask.Data[i * s + t];
                if (m == 0) continue;
                count += m;
                var row = hidden.Data.AsSpan((i * s + t) * h, h);
                for (int j = 0; j < h; j++) sum[j] += m * (double)row[j];
            }
            for (int j = 0; j < h; j++) pooled[i * h + j] = count > 0 ? (float)(sum[j] / count) : 0;
        }
        return new FloatTensor(pooled, [b, h]);
    }
}
