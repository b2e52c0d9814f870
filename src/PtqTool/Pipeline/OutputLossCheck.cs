using Microsoft.ML.OnnxRuntime;
using PtqTool.Evaluation;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Pipeline;

/// <summary>
/// The model output loss of quantized candidates against FP32 on a few samples, the FP32 outputs run once: how
/// `--rounding-check` decides per layer (<see cref="RoundingStep.Apply"/>) and how the refined and unrefined
/// scales are compared after output bias correction (<see cref="HeldOutComparison"/>). The loss is
/// <see cref="OutputLoss"/>'s (KL for class scores, relative MSE otherwise) with padded sequence positions left out
/// (<see cref="PaddingMask"/>); candidates run under exact QDQ semantics (no fusion).
/// </summary>
public sealed class OutputLossCheck
{
    /// <summary>Samples the rounding check runs on: calibration samples the layers were not fitted on, where enough are left.</summary>
    public const int RoundingSamples = 64;

    private readonly List<ModelFeed> _batches;
    private readonly List<FloatTensor> _references;
    private readonly string _output;
    private readonly RunnerOptions _exact;

    /// <summary>The loss kind (kl or relative_mse).</summary>
    public OutputLossKind Kind { get; }
    /// <summary>kl or relative_mse, as the reports name it.</summary>
    public string LossName => Kind == OutputLossKind.KL ? "kl" : "relative_mse";
    /// <summary>Samples it measures on.</summary>
    public int Samples { get; }
    /// <summary>held_out: samples the candidates were not fitted on; fitted: the fallback samples (too few were held out).</summary>
    public string ComparedOn { get; }

    private OutputLossCheck(List<ModelFeed> batches, List<FloatTensor> references, string output, RunnerOptions exact, string comparedOn)
    {
        _batches = batches;
        _references = references;
        _output = output;
        _exact = exact;
        Samples = batches.Sum(b => b.Batch);
        ComparedOn = comparedOn;
        Kind = OutputLoss.For(references[0].Shape);
    }

    /// <summary>
    /// The check on up to <paramref name="count"/> of the samples <paramref name="heldOut"/> gives (called with the FP32
    /// model's fixed batch size, or -1) when they are at least <see cref="HeldOutComparison.MinSamples"/>, else on up
    /// to <paramref name="count"/> of <paramref name="fallback"/>; null when that has none either. The samples and
    /// their FP32 outputs are held while candidates run: bounded by <paramref name="budgetBytes"/> (at least one batch).
    /// </summary>
    public static OutputLossCheck? Prepare(ModelProto fp32, string output, Func<int, IEnumerable<ModelFeed>> heldOut, IReadOnlyList<ModelFeed> fallback,
        RunnerOptions runner, int count, long budgetBytes)
    {
        using var session = OrtRunner.FromModel(fp32, runner, "FP32 model (held-out samples)");
        List<ModelFeed> batches = [];
        List<FloatTensor> references = [];
        void Take(IEnumerable<ModelFeed> source)
        {
            long held = 0;
            int taken = 0;
            foreach (var b in source)
            {
                if (taken >= count) break;
                var part = b.Batch > count - taken && session.FixedBatch <= 0 ? b.Slice(0, count - taken) : b;
                var reference = PaddingMask.Apply(session.Run(part, [output])[output], PaddingMask.Of(part));
                long bytes = 4L * (reference.Data.Length + part.Tensors.Sum(t => (long)t.Data.Length));
                if (batches.Count > 0 && held + bytes > budgetBytes) break;
                held += bytes;
                batches.Add(part);
                references.Add(reference);
                taken += part.Batch;
            }
        }
        Take(heldOut(session.FixedBatch));
        bool held = batches.Sum(b => b.Batch) >= HeldOutComparison.MinSamples;
        if (!held)
        {
            batches.Clear();
            references.Clear();
            Take(fallback);
        }
        return batches.Count == 0 ? null
            : new OutputLossCheck(batches, references, output, runner with { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL }, held ? "held_out" : "fitted");
    }

    /// <summary>The output loss of <paramref name="quantized"/> against the FP32 outputs on the check's samples.</summary>
    public double Loss(ModelProto quantized) => Contributions(quantized).Sum();

    /// <summary>
    /// Each sample's share of the loss (they sum to <see cref="Loss"/>): its rows' KL over all rows, or its squared
    /// error over the references' whole Σ f².
    /// </summary>
    public double[] Contributions(ModelProto quantized)
    {
        var shares = new List<OutputLoss>();
        double signal = 0;
        int rows = 0;
        using var session = OrtRunner.FromModel(quantized, _exact, "quantized candidate (held-out samples)");
        for (int i = 0; i < _batches.Count; i++)
        {
            var output = PaddingMask.Apply(session.Run(_batches[i], [_output])[_output], PaddingMask.Of(_batches[i]));
            var reference = _references[i];
            int n = _batches[i].Batch, per = reference.Data.Length / n;
            int[] shape = [1, .. reference.Shape[1..]];
            for (int j = 0; j < n; j++)
            {
                var share = new OutputLoss(Kind);
                share.Add(new FloatTensor(reference.Data.AsSpan(j * per, per).ToArray(), shape), new FloatTensor(output.Data.AsSpan(j * per, per).ToArray(), shape));
                signal += share.Signal;
                rows += share.Rows;
                shares.Add(share);
            }
        }
        return shares.Select(s => Kind == OutputLossKind.KL ? s.Sum / Math.Max(1, rows) : s.Sum / (signal > 0 ? signal : 1)).ToArray();
    }

    /// <summary>How many standard errors a loss rise must exceed to count (a two-sided 95 % paired test).</summary>
    public const double RiseZ = 2;
    /// <summary>How many times the loss so far a layer's learned codes must reach to be reverted.</summary>
    public const double BreakFactor = 2;

    /// <summary>
    /// Whether <paramref name="after"/> has a higher loss than <paramref name="before"/> beyond chance: the rise Σ dⱼ of the
    /// per-sample differences dⱼ exceeds <see cref="RiseZ"/> times its standard error √n·sd(d). A few heavy samples
    /// (a flipped prediction) move a loss on tens of samples by more than the layer it judges.
    /// </summary>
    public static bool Rises(double[] after, double[] before)
    {
        int n = after.Length;
        var d = after.Zip(before, (a, b) => a - b).ToArray();
        double rise = d.Sum(), mean = rise / n;
        double variance = n < 2 ? 0 : d.Sum(v => (v - mean) * (v - mean)) / (n - 1);
        return rise > RiseZ * Math.Sqrt(n * variance);
    }

    /// <summary>
    /// Whether a layer's learned codes break the model: the loss at least <see cref="BreakFactor"/> times the loss so
    /// far, and the rise beyond chance (<see cref="Rises"/>). Smaller rises are let through: the layer is judged with
    /// every later layer still nearest, and there the first layer of the bundled CNN and ResNet raises the loss by
    /// 28–65 % although the model with every layer learned ends 10–30 times below nearest rounding's (docs/rounding.md).
    /// </summary>
    public static bool Breaks(double[] after, double[] before) => after.Sum() >= BreakFactor * before.Sum() && Rises(after, before);
}
