using PtqTool.Evaluation;
using PtqTool.Rewrite;
using PtqTool.Scales;

namespace PtqTool.Pipeline;

/// <summary>
/// `--auto-fallback`: while the gate (--max-drop, --min-sqnr or --min-cosine) fails on --eval, raise the weight bits
/// of the layer that buys the most sensitivity per added bit (ΔΩ / (P·Δk), from the same Ω_i(k) as --avg-bits) by one
/// candidate width, re-quantize from one calibration pass and measure again; stop as soon as the gate holds. When every
/// layer is at the widest width and the gate still fails, nodes are kept in float (their activations and weights), in
/// the order of what keeping each one alone in float recovers on --eval (leave-one-out, as `ptq sensitivity`), one more
/// per measurement, until the gate holds (the accuracy-aware fallback of NNCF's quantize_with_accuracy_control).
/// The final run reuses that calibration pass.
/// </summary>
public static class FallbackJob
{
    /// <param name="Weight">The tensor raised before this measurement (null for the starting point and float steps).</param>
    /// <param name="KeptFloat">The node kept in float before this measurement (null for weight steps).</param>
    public sealed record Step(string? Weight, int FromBits, int ToBits, double GateValue, bool Passed, string? KeptFloat = null);

    /// <summary>A node's leave-one-out measurement: the gate value with it alone kept in float.</summary>
    public sealed record Candidate(string Node, string OpType, double GateValue);

    /// <param name="Calibration">The statistics the search measured on: the final run uses them instead of calibrating again.</param>
    /// <param name="Ranking">The leave-one-out measurements, best first (empty when the weight steps reached the gate).</param>
    public sealed record Result(QuantizationOptions Options, IReadOnlyList<Step> Steps, string Metric, CalibrationStep.Kept Calibration, IReadOnlyList<Candidate> Ranking)
    {
        /// <summary>The nodes the fallback kept in float, in the order it kept them.</summary>
        public IReadOnlyList<string> KeptFloat => [.. Steps.Select(s => s.KeptFloat).OfType<string>()];
    }

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
        // Keeping a node in float can give its neighbours tensors of their own to calibrate: the one calibration pass
        // collects what every leave-one-out plan needs.
        // Only nodes --exclude can name in the user's model (not those the normalizer made).
        var named = prepared.Original.Graph.Node.Select(n => n.Name).Where(n => n.Length > 0).ToHashSet(StringComparer.Ordinal);
        var nodes = prepared.Plan.QuantizedNodes.Where(n => named.Contains(n.Name) && !options.Exclude.Contains(n.Name)).ToList();
        foreach (var node in nodes)
            prepared.Plan.StatsTensors.UnionWith(Rewrite.Handlers.PlanBuilder.Build(prepared.Folded, WithFloat(options, [node.Name])).StatsTensors);
        using var runs = new CalibratedRuns(prepared, request with { AverageWeightBits = null }, progress);
        var steps = new List<Step>();
        string? raised = null;
        int from = 0, to = 0;
        progress.Start("auto-fallback", layers.Count * layers[0].Bits.Count);
        while (true)
        {
            var report = runs.Quantize(options with { LayerWeightBits = new Dictionary<string, int>(bits) }, gateOnly: true);
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
        options = options with { LayerWeightBits = bits };
        var ranking = new List<Candidate>();
        if (!steps[^1].Passed && nodes.Count > 0)
        {
            progress.Finish();
            (options, ranking) = KeepInFloat(options, nodes, runs, o => runs.Covers(Rewrite.Handlers.PlanBuilder.Build(prepared.Folded, o)), gate, steps, progress);
        }
        progress.Finish();
        return new Result(options, steps, gate.Metric.ToString().ToLowerInvariant(), runs.Calibration, ranking);
    }

    /// <summary>
    /// Ranks the nodes by the gate value with each alone kept in float, then keeps them in float in that order, one more
    /// per measurement, until the gate holds or every node that recovered anything is float. A node whose plan needs a
    /// tensor the calibration did not observe is passed over.
    /// </summary>
    /// <param name="covered">Whether the calibration observed every tensor the plan under these options quantizes.</param>
    private static (QuantizationOptions, List<Candidate>) KeepInFloat(QuantizationOptions options, List<Onnx.Proto.NodeProto> nodes, CalibratedRuns runs,
        Func<QuantizationOptions, bool> covered, Gate gate, List<Step> steps, ProgressReporter progress)
    {
        // Ranked with each tensor's own scales (no --refine): cheaper runs, against a start measured the same way.
        double start = gate.Value(runs.Quantize(options, refine: false, gateOnly: true).GateOutputs);
        // Higher is better for SQNR and cosine, lower for points lost.
        bool lowerIsBetter = gate.Metric is GateMetric.Top1 or GateMetric.Agreement;
        double Gain(double value) => lowerIsBetter ? start - value : value - start;
        progress.Start("fallback ranking", nodes.Count);
        var ranking = new List<Candidate>();
        foreach (var node in nodes)
        {
            var report = runs.Quantize(WithFloat(options, [node.Name]), refine: false, gateOnly: true);
            ranking.Add(new Candidate(node.Name, node.OpType, gate.Value(report.GateOutputs)));
            progress.Report(ranking.Count);
        }
        progress.Finish();
        // Best first; equal gains in graph order (the ranking is stable).
        ranking = [.. ranking.OrderByDescending(c => Gain(c.GateValue))];
        var kept = new List<string>();
        progress.Start("fallback to float", ranking.Count(c => Gain(c.GateValue) > 0));
        foreach (var c in ranking.Where(c => Gain(c.GateValue) > 0))
        {
            if (!covered(WithFloat(options, [.. kept, c.Node]))) continue;
            kept.Add(c.Node);
            var report = runs.Quantize(WithFloat(options, kept), gateOnly: true);
            bool passed = gate.Passes(report.GateOutputs);
            steps.Add(new Step(null, 0, 0, gate.Value(report.GateOutputs), passed, c.Node));
            progress.Report(kept.Count);
            if (passed) break;
        }
        return (WithFloat(options, kept), ranking);
    }

    private static QuantizationOptions WithFloat(QuantizationOptions options, IEnumerable<string> nodes) =>
        options with { Exclude = [.. options.Exclude, .. nodes] };
}
