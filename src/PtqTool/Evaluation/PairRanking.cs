namespace PtqTool.Evaluation;

/// <summary>
/// Whether quantization keeps how similar the samples are to each other: the cosine similarity of every pair of the
/// first <see cref="MaxSamples"/> samples' outputs, FP32 and quantized, and Spearman's rank correlation of the two lists
/// (what a retrieval or semantic-similarity task ranks by).
/// </summary>
public sealed class PairRanking
{
    public const int MaxSamples = 1000;

    private readonly List<float[]> _fp32 = [], _quantized = [];

    public int Samples => _fp32.Count;

    public void Add(ReadOnlySpan<float> fp32, ReadOnlySpan<float> quantized)
    {
        if (_fp32.Count >= MaxSamples) return;
        _fp32.Add(Normalized(fp32));
        _quantized.Add(Normalized(quantized));
    }

    /// <summary>Spearman's ρ over all pairs; NaN with fewer than 3 samples.</summary>
    public double Spearman()
    {
        int n = _fp32.Count;
        if (n < 3) return double.NaN;
        int pairs = n * (n - 1) / 2;
        var a = new double[pairs];
        var b = new double[pairs];
        for (int i = 0, k = 0; i < n; i++)
            for (int j = i + 1; j < n; j++, k++)
            {
                a[k] = Dot(_fp32[i], _fp32[j]);
                b[k] = Dot(_quantized[i], _quantized[j]);
            }
        return Statistics.Spearman(a, b);
    }

    private static float[] Normalized(ReadOnlySpan<float> v)
    {
        double norm = 0;
        foreach (float x in v) norm += x * (double)x;
        norm = Math.Sqrt(norm);
        var r = new float[v.Length];
        for (int i = 0; i < v.Length; i++) r[i] = norm > 0 ? (float)(v[i] / norm) : 0;
        return r;
    }

    private static double Dot(float[] x, float[] y) => System.Numerics.Tensors.TensorPrimitives.Dot(x, y);
}
