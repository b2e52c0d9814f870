using PtqTool.Onnx;

namespace PtqTool.Evaluation;

/// <summary>How far a quantized model's output is from the FP32 one's, for choosing scales by what the model outputs.</summary>
public enum OutputLossKind
{
    /// <summary>Mean KL(p_fp32 ‖ p_quantized) over samples of class scores (softmax of logits; probabilities as they are).</summary>
    KL,
    /// <summary>Σ (f − q)² / Σ f²: relative noise energy, for maps, sequences and embeddings (10^(−SQNR/10)).</summary>
    RelativeMse,
}

/// <summary>Running sums of an <see cref="OutputLossKind"/> over batches.</summary>
public sealed class OutputLoss(OutputLossKind kind)
{
    private double _sum, _signal;
    private int _rows;

    public OutputLossKind Kind => kind;

    /// <summary>KL for one score vector per sample ([batch, classes], classes ≥ 2), relative MSE for anything else.</summary>
    public static OutputLossKind For(int[] outputShape) =>
        outputShape.Length == 2 && (outputShape[1] >= 2 || outputShape[1] < 0) ? OutputLossKind.KL : OutputLossKind.RelativeMse;

    public void Add(FloatTensor reference, FloatTensor quantized)
    {
        if (reference.Data.Length != quantized.Data.Length) throw new ArgumentException("outputs of different sizes");
        if (kind == OutputLossKind.RelativeMse)
        {
            var f = reference.Data; var q = quantized.Data;
            for (int i = 0; i < f.Length; i++)
            {
                double e = f[i] - (double)q[i];
                _sum += e * e;
                _signal += f[i] * (double)f[i];
            }
            return;
        }
        int classes = reference.Shape[^1];
        for (int r = 0; r * classes < reference.Data.Length; r++)
        {
            var p = Distribution(reference.Data.AsSpan(r * classes, classes));
            var q = Distribution(quantized.Data.AsSpan(r * classes, classes));
            double kl = 0;
            for (int c = 0; c < classes; c++)
                if (p[c] > 0) kl += p[c] * (Math.Log(p[c]) - Math.Log(Math.Max(q[c], 1e-30)));
            _sum += kl;
            _rows++;
        }
    }

    /// <summary>Σ of the squared errors (relative MSE) or of the rows' KL divergences (KL) added so far.</summary>
    public double Sum => _sum;
    /// <summary>Σ f² of the references added (relative MSE).</summary>
    public double Signal => _signal;
    /// <summary>Score rows added (KL).</summary>
    public int Rows => _rows;

    /// <summary>The loss over everything added (0 for nothing).</summary>
    public double Value => kind == OutputLossKind.KL
        ? (_rows == 0 ? 0 : _sum / _rows)
        : (_signal > 0 ? _sum / _signal : _sum);

    /// <summary>A row as probabilities: as it is when it already is one (non-negative, summing to 1), else its softmax.</summary>
    public static double[] Distribution(ReadOnlySpan<float> row)
    {
        var p = new double[row.Length];
        double sum = 0;
        bool probabilities = true;
        foreach (float v in row) { sum += v; probabilities &= v >= 0; }
        if (probabilities && Math.Abs(sum - 1) < 1e-3)
        {
            for (int i = 0; i < row.Length; i++) p[i] = row[i] / sum;
            return p;
        }
        double max = double.NegativeInfinity;
        foreach (float v in row) max = Math.Max(max, v);
        double z = 0;
        for (int i = 0; i < row.Length; i++) z += p[i] = Math.Exp(row[i] - max);
        for (int i = 0; i < row.Length; i++) p[i] /= z;
        return p;
    }
}
