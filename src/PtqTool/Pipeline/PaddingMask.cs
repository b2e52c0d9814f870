using PtqTool.Onnx;

namespace PtqTool.Pipeline;

/// <summary>
/// The padded sequence positions of a text batch, so that layer fits (AdaRound's and GPTQ's input Grams) leave them
/// out. Padded positions are rows the model computes, but attention masks them as keys and the pooling drops them, so
/// the output never sees them; with --seq-len 128 and sentences of 6–40 words they are most of the rows, and fitting
/// to them fits the wrong data. The mask is a feed's attention-mask input: a named rank-2 [N, S] tensor whose name
/// contains "mask" and whose values are all 0 or 1, in a feed of several inputs.
/// </summary>
public static class PaddingMask
{
    /// <summary>The feed's [N, S] attention mask, or null where it has none.</summary>
    public static FloatTensor? Of(ModelFeed feed) => Find(feed)?.Mask;

    /// <summary>The feed's attention-mask input and its [N, S] values, or null where it has none.</summary>
    public static (string Name, FloatTensor Mask)? Find(ModelFeed feed)
    {
        if (feed.Names.Count < 2) return null;
        (string, FloatTensor)? found = null;
        for (int i = 0; i < feed.Names.Count; i++)
        {
            var t = feed.Tensors[i];
            if (feed.Names[i] is not { } name || !name.Contains("mask", StringComparison.OrdinalIgnoreCase) || t.Shape.Length != 2) continue;
            if (found is not null || t.Data.Any(v => v is not (0f or 1f))) return null;
            found = (name, t);
        }
        return found;
    }

    /// <summary>Whether a tensor of <paramref name="shape"/> is [N, S, K] over the mask's [N, S]: one row per position.</summary>
    public static bool Covers(int[] shape, FloatTensor mask) => shape.Length == 3 && shape[0] == mask.Shape[0] && shape[1] == mask.Shape[1];

    /// <summary>
    /// <paramref name="x"/> with the rows of padded positions set to zero (they then add nothing to a Gram), when x is
    /// [N, S, K] over the mask's [N, S]; otherwise x as it is.
    /// </summary>
    public static FloatTensor Apply(FloatTensor x, FloatTensor? mask)
    {
        if (mask is null || !Covers(x.Shape, mask) || !mask.Data.Contains(0f)) return x;
        int k = x.Shape[2];
        var data = (float[])x.Data.Clone();
        for (int row = 0; row < mask.Data.Length; row++)
            if (mask.Data[row] == 0) Array.Clear(data, row * k, k);
        return new FloatTensor(data, x.Shape);
    }
}
