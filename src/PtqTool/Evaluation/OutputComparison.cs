using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Scales;

namespace PtqTool.Evaluation;

/// <summary>FP32 vs INT8 on the same batches: top-1/top-5 of each (when labelled), top-1 agreement, SQNR and cosine of the outputs.</summary>
public sealed record OutputComparison(
    int Samples, bool Labelled,
    double Fp32Top1, double Int8Top1, double Fp32Top5, double Int8Top5,
    double Agreement, double SqnrDb, double Cosine)
{
    public double Top1Drop => Fp32Top1 - Int8Top1;

    /// <summary>Whether the output is one score vector per sample ([batch, classes]); top-1 agreement means nothing otherwise (a heat map, a sequence).</summary>
    public bool ClassScores { get; init; } = true;

    /// <summary>The input whose mask mean-pooled token outputs into sentence embeddings before comparing (<see cref="SentenceEmbedding"/>), or null.</summary>
    public string? PooledBy { get; init; }

    /// <summary>Spearman's ρ of the pairwise output similarities, FP32 vs quantized (<see cref="PairRanking"/>); NaN when not measured.</summary>
    public double PairSpearman { get; init; } = double.NaN;

    public static OutputComparison Run(OrtRunner fp32, OrtRunner int8, IEnumerable<SampleBatch> batches, Action<int>? onSamples = null)
    {
        var comparer = new OutputComparer();
        string output = fp32.OutputNames[0];
        foreach (var batch in batches)
        {
            var f = fp32.Run(batch.Input, [output])[output];
            var q = int8.Run(batch.Input, [output])[output];
            comparer.Add(batch.Labels, f, q, batch.Files);
            onSamples?.Invoke(comparer.Samples);
        }
        return comparer.Result();
    }
}

/// <summary>Running sums behind an <see cref="OutputComparison"/>: add batches of FP32 and quantized outputs as they come, read the result at the end.</summary>
public sealed class OutputComparer
{
    private int _n, _labelled, _fTop1, _qTop1, _fTop5, _qTop5, _agree;
    private bool _classScores = true;
    private double _signal, _noise, _cosine;
    private readonly PairRanking? _pairs;
    private readonly string? _pooledBy;

    /// <param name="pooledBy">The mask input the outputs were mean-pooled by; its comparison also ranks sample pairs.</param>
    public OutputComparer(string? pooledBy = null)
    {
        _pooledBy = pooledBy;
        if (pooledBy is not null) _pairs = new PairRanking();
    }

    public int Samples => _n;

    /// <param name="labels">One per sample; negative for unlabelled samples.</param>
    /// <param name="files">The samples' files, named when an output is not finite (NaN scores would count as hits).</param>
    public void Add(IReadOnlyList<int> labels, FloatTensor f, FloatTensor q, IReadOnlyList<string>? files = null)
    {
        int k = f.SampleSize;
        _classScores &= f.Shape.Length == 2;
        for (int i = 0; i < labels.Count; i++)
        {
            var fr = f.Data.AsSpan(i * k, k);
            var qr = q.Data.AsSpan(i * k, k);
            if (!AllFinite(fr) || !AllFinite(qr))
                throw new PtqException($"{(files is null ? $"sample {_n}" : files[i])}: the {(AllFinite(fr) ? "quantized" : "FP32")} model's output is NaN or infinite on it; no score can be measured");
            if (ModelScorer.ArgMax(fr) == ModelScorer.ArgMax(qr)) _agree++;
            double dot = 0, ff = 0, qq = 0;
            for (int j = 0; j < k; j++)
            {
                double e = fr[j] - qr[j];
                _noise += e * e;
                dot += fr[j] * (double)qr[j];
                ff += fr[j] * (double)fr[j];
                qq += qr[j] * (double)qr[j];
            }
            _signal += ff;
            _cosine += ff > 0 && qq > 0 ? dot / Math.Sqrt(ff * qq) : (ff == qq ? 1 : 0);
            _pairs?.Add(fr, qr);
            int label = labels[i];
            if (label >= 0)
            {
                _labelled++;
                int rf = ModelScorer.RankOf(fr, label), rq = ModelScorer.RankOf(qr, label);
                if (rf == 0) _fTop1++;
                if (rq == 0) _qTop1++;
                if (rf < 5) _fTop5++;
                if (rq < 5) _qTop5++;
            }
            _n++;
        }
    }

    private static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (float v in values) if (!float.IsFinite(v)) return false;
        return true;
    }

    public OutputComparison Result()
    {
        double Pct(int hits, int of) => of == 0 ? double.NaN : 100.0 * hits / of;
        return new OutputComparison(_n, _labelled == _n && _n > 0,
            Pct(_fTop1, _labelled), Pct(_qTop1, _labelled), Pct(_fTop5, _labelled), Pct(_qTop5, _labelled),
            Pct(_agree, _n), Sqnr.Decibels(_signal, _noise), _n == 0 ? double.NaN : _cosine / _n) { ClassScores = _classScores && _pooledBy is null, PooledBy = _pooledBy, PairSpearman = _pairs?.Spearman() ?? double.NaN };
    }
}
