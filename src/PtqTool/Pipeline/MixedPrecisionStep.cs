using PtqTool.Evaluation;
using PtqTool.Rewrite;
using PtqTool.Scales;

namespace PtqTool.Pipeline;

/// <summary>
/// `--avg-bits B`: ZeroQ's mixed precision. Every weight tensor's sensitivity Ω_i(k) at each candidate bit width is
/// measured on calibration images (the FP32 model with that tensor alone fake-quantized, <see cref="WeightSensitivity"/>),
/// then Σ Ω_i(k_i) is minimized exactly subject to Σ P_i·k_i ≤ B·Σ P_i (<see cref="BitAllocation"/>).
/// </summary>
public static class MixedPrecisionStep
{
    /// <summary>Samples the sensitivities are measured on by default (spread over the folder; --sensitivity-samples).</summary>
    public const int DefaultSensitivitySamples = 128;

    public sealed record Layer(string Weight, long Parameters, int Bits, IReadOnlyList<int> Candidates, IReadOnlyList<double> Sensitivity);

    /// <param name="Target">The --avg-bits asked for.</param>
    /// <param name="AverageBits">Σ P_i·k_i / Σ P_i of the choice; with int4 storage k_i counts stored bits (4 up to 4 bits, 8 above).</param>
    /// <param name="Sensitivity">Σ Ω_i(k_i) of the choice.</param>
    /// <param name="FrontierPoints">Size of the exact Pareto frontier the choice was read from.</param>
    public sealed record Result(double Target, double AverageBits, double Sensitivity, int Samples, IReadOnlyList<Layer> Layers, int FrontierPoints);

    public static int[] Candidates(int maxBits) => new[] { 2, 4, 6, maxBits }.Where(b => b <= maxBits).Distinct().Order().ToArray();

    public static (QuantizationOptions Options, Result? Mixed) Apply(PreparedModel model, QuantizeRequest request, ProgressReporter progress, Onnx.FloatTensor? synthetic = null)
    {
        if (request.AverageWeightBits is not double target) return (model.Options, null);
        var (layers, samples) = Measure(model, request, progress, synthetic);
        // Below the narrowest width Choose refuses; above the widest, every layer would just sit at the widest.
        if (target > model.Options.WeightBits)
            throw new PtqException($"--avg-bits: {target} is outside {Candidates(model.Options.WeightBits)[0]}..{model.Options.WeightBits}");
        var result = Choose(layers, BitAllocation.Frontier(layers), target, samples);
        progress.Message($"mixed precision: {result.AverageBits:0.00} average weight bits ({string.Join(", ", result.Layers.GroupBy(l => l.Bits).OrderByDescending(g => g.Key).Select(g => $"{g.Count()} at {g.Key}"))}), Σ Ω {result.Sensitivity:G3} on {samples} samples");
        return (WithBits(model.Options, result), result);
    }

    /// <summary>
    /// Ω_i(k) of every weight tensor at every candidate width, on up to --sensitivity-samples images of --calib,
    /// else on the synthetic calibration samples (ZeroQ: the distilled data ranks layers), else on --eval's images.
    /// </summary>
    public static (List<LayerChoices> Layers, int Samples) Measure(PreparedModel model, QuantizeRequest request, ProgressReporter progress, Onnx.FloatTensor? synthetic = null, int? maxBits = null)
    {
        var batches = SampleBatches.Load(model, request, request.SensitivitySamples, synthetic, "--avg-bits (layer sensitivity)");
        int samples = batches.Sum(b => b.Batch);
        var options = model.Options;
        var bits = Candidates(maxBits ?? options.WeightBits);
        var weights = model.Plan.Weights;
        if (weights.Count == 0) throw new PtqException($"{request.ModelPath}: no quantized weights to choose bit widths for");
        int tensors = weights.Select(w => w.Node.Input[w.InputIndex]).Distinct().Count();
        progress.Start("sensitivity (layer × bits)", tensors * bits.Length);
        var loss = Scales.Losses.ScaleLosses.Create(options.ResolvedWeightLoss, options.Percentile);
        var layers = WeightSensitivity.Measure(model.Folded.Model, weights, bits, loss, options.PerChannelWeights, batches,
            new Onnx.RunnerOptions { Threads = request.Threads }, progress.Report);
        progress.Finish();
        // With int4 storage the budget counts stored bits, so the weights' bytes in the file are within it.
        if (options.Int4WeightStorage) layers = layers.Select(l => l with { StorageBits = l.Bits.Select(Int4Storage.StoredBits).ToList() }).ToList();
        return (layers, samples);
    }

    /// <summary>The frontier point with the least Σ Ω whose average bits are at most <paramref name="target"/>.</summary>
    public static Result Choose(IReadOnlyList<LayerChoices> layers, IReadOnlyList<BitAssignment> frontier, double target, int samples)
    {
        long parameters = layers.Sum(l => l.Parameters);
        var best = frontier.LastOrDefault(a => a.Size <= (long)Math.Floor(target * parameters))
            ?? throw new PtqException($"--avg-bits: {target} is below the smallest choice ({(double)frontier[0].Size / parameters:0.##} bits)");
        var chosen = layers.Select((l, i) => new Layer(l.Name, l.Parameters, l.Bits[best.Choices[i]], l.Bits, l.Sensitivity)).ToList();
        return new Result(target, (double)best.Size / parameters, best.Sensitivity, samples, chosen, frontier.Count);
    }

    public static QuantizationOptions WithBits(QuantizationOptions options, Result result) =>
        options with { LayerWeightBits = result.Layers.ToDictionary(l => l.Weight, l => l.Bits, StringComparer.Ordinal) };
}
