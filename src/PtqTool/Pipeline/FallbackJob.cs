using PtqTool.Evaluation;
using PtqTool.Rewrite;
using PtqTool.Scales;

namespace PtqTool.Pipeline;

/// <summary>
/// `--auto-fallback`: while the gate (--max-drop, --min-sqnr or --min-cosine) fails on --eval, raise the weight bits
/// of the layer that buys the most sensitivity per added bit (ΔΩ / (P·Δk), from the same Ω_i(k) as --avg-bits) by one
/// candidate width, re-quantize from one calibration pass and measure again; stop as soon as the gate holds, or when
/// every layer is at the widest width. The final run reuses that calibration pass.
/// </summary>
public static class FallbackJob
{
    /// <param name="Weight">The tensor raised before this measurement (null for the starting point).</param>
    public sealed record Step(string? Weight, int FromBits, int ToBits, double GateValue, bool Passed);

    /// <param name="Calibration">The statistics the search measured on: the final run uses them instead of calibrating again.</param>
    public sealed record Result(QuantizationOptions Options, IReadOnlyList<Step> Steps, string Metric, CalibrationStep.Kept Calibration);

    public static Result Find(QuantizeRequest request, ProgressReporter progress)
    {
        request = request.Validated();
        var prepared = PreparedModel.Prepare(request, progress.Warn);
        var evaluation = EvaluationSet.Resolve(request, prepared);
        var gate = request.ResolveGate(evaluation.Labelled, prepared.OutputShape);
        if (gate.Threshold is null) throw new PtqException("--auto-fallback needs a gate to reach: --max-drop, --min-sqnr or --min-cosine");
        // Layers start at --weight-bits (or the --avg-bits mix) and may rise to the target's widest weights.
        int ceiling = prepared.Options.Guard == Kernels.SaturationGuard.SevenBitWeights ? 7 : 8;
        var (layers, samples) = MixedPrecisionStep.Measure(prepared, request, progress, maxBits: ceiling);
        int start = prepared.Options.WeightBits;
        var options = prepared.Options with { WeightBits = ceiling };
        var bits = new Dictionary<string, int>(StringComparer.Ordinal);
        if (request.AverageWeightBits is double target)
            foreach (var l in MixedPrecisionStep.Choose(layers, BitAllocation.Frontier(layers), target, samples).Layers) bits[l.Weight] = l.Bits;
        else
            foreach (var l in layers) bits[l.Name] = l.Bits.Where(b => b <= start).DefaultIfEmpty(l.Bits[0]).Max();
        using var runs = new CalibratedRuns(prepared, request with { AverageWeightBits = null }, progress);
        var steps = new List<Step>();
        string? raised = null;
        int from = 0, to = 0;
        progress.Start("auto-fallback", layers.Count * layers[0].Bits.Count);
        while (true)
        {
            var report = runs.Quantize(options with { LayerWeightBits = new Dictionary<string, int>(bits) });
            bool passed = gate.Passes(report.GateOutputs);
            steps.Add(new Step(raised, from, to, gate.Value(report.GateOutputs), passed));
            progress.Report(steps.Count);
            if (passed) break;
            // The best ΔΩ per added bit·parameter among layers that can still go up one width.
            LayerChoices? best = null;
            int bestNext = 0;
            double bestGain = double.NegativeInfinity;
            foreach (var l in layers)
            {
                int i = l.Bits.ToList().IndexOf(bits[l.Name]);
                if (i < 0 || i + 1 >= l.Bits.Count || l.Bits[i + 1] > options.WeightBits) continue;
                double gain = (l.Sensitivity[i] - l.Sensitivity[i + 1]) / (l.Parameters * (double)(l.Bits[i + 1] - l.Bits[i]));
                if (gain > bestGain) { best = l; bestNext = l.Bits[i + 1]; bestGain = gain; }
            }
            if (best is null) break;
            (raised, from, to) = (best.Name, bits[best.Name], bestNext);
            bits[best.Name] = bestNext;
        }
        progress.Finish();
        return new Result(options with { LayerWeightBits = bits }, steps, gate.Metric.ToString().ToLowerInvariant(), runs.Calibration);
    }
}
