using PtqTool.Data;
using PtqTool.Onnx;

namespace PtqTool.Evaluation;

/// <summary>FP32 vs INT8 on the same batches: top-1/top-5 of each (when labelled), top-1 agreement, SQNR and cosine of the outputs.</summary>
public sealed record OutputComparison(
    int Samples, bool Labelled,
    double Fp32Top1, double Int8Top1, double Fp32Top5, double Int8Top5,
    double Agreement, double SqnrDb, double Cosine)
{
    public double Top1Drop => Fp32Top1 - Int8Top1;

    public static OutputComparison Run(OrtRunner fp32, OrtRunner int8, IEnumerable<SampleBatch> batches, Action<int>? onSamples = null)
    {
        int n = 0, labelled = 0, fTop1 = 0, qTop1 = 0, fTop5 = 0, qTop5 = 0, agree = 0;
        double signal = 0, noise = 0, cosine = 0;
        string output = fp32.OutputNames[0];
        foreach (var batch in batches)
        {
            var f = fp32.Run(batch.Input, [output])[output];
            var q = int8.Run(batch.Input, [output])[output];
            int k = f.SampleSize;
            for (int i = 0; i < batch.Labels.Length; i++)
            {
                var fr = f.Data.AsSpan(i * k, k);
                var qr = q.Data.AsSpan(i * k, k);
                if (ModelScorer.ArgMax(fr) == ModelScorer.ArgMax(qr)) agree++;
                double dot = 0, ff = 0, qq = 0;
                for (int j = 0; j < k; j++)
                {
                    double e = fr[j] - qr[j];
                    signal += fr[j] * (double)fr[j];
                    noise += e * e;
                    dot += fr[j] * (double)qr[j];
                    ff += fr[j] * (double)fr[j];
                    qq += qr[j] * (double)qr[j];
                }
                cosine += ff > 0 && qq > 0 ? dot / Math.Sqrt(ff * qq) : (ff == qq ? 1 : 0);
                int label = batch.Labels[i];
                if (label >= 0)
                {
                    labelled++;
                    int rf = ModelScorer.RankOf(fr, label), rq = ModelScorer.RankOf(qr, label);
                    if (rf == 0) fTop1++;
                    if (rq == 0) qTop1++;
                    if (rf < 5) fTop5++;
                    if (rq < 5) qTop5++;
                }
                n++;
            }
            onSamples?.Invoke(n);
        }
        double Pct(int hits, int of) => of == 0 ? double.NaN : 100.0 * hits / of;
        return new OutputComparison(n, labelled == n && n > 0,
            Pct(fTop1, labelled), Pct(qTop1, labelled), Pct(fTop5, labelled), Pct(qTop5, labelled),
            Pct(agree, n), Sqnr.Decibels(signal, noise), n == 0 ? double.NaN : cosine / n);
    }
}

/// <summary>Signal-to-quantization-noise ratio.</summary>
public static class Sqnr
{
    /// <summary>10·log10(Σx² / Σ(x − q)²); +∞ when there is no error.</summary>
    public static double Decibels(double signal, double noise) =>
        noise <= 0 ? double.PositiveInfinity : 10 * Math.Log10(Math.Max(signal, double.Epsilon) / noise);
}
