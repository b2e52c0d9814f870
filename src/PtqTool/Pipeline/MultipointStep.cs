using System.Diagnostics;
using PtqTool.Kernels;
using PtqTool.Multipoint;
using PtqTool.Onnx;
using PtqTool.Rewrite;
using PtqTool.Rounding;
using PtqTool.Scales;
using PtqTool.Scales.Losses;

namespace PtqTool.Pipeline;

/// <summary>
/// `--multipoint F`: after the rewrite, every Conv/Gemm/MatMul weight gets a candidate second term
/// (<see cref="ResidualTerm"/>); what each output channel's term would buy is the fall of the layer's output error
/// against the FP32 layer (<see cref="RowGain"/>, from the layer's input Grams over the samples, as learned rounding uses
/// them), its cost is the channel's multiply-adds; the budget F × the model's MACs is spent on the best buys
/// (<see cref="TermSelection"/>) and the chosen terms are written as integer branches (<see cref="SecondTermBranch"/>).
/// Term 1 is untouched: with nothing chosen the model is the one-term model. With --rounding adaround the choice is
/// made on the nearest-rounded model first (<see cref="Select"/>); then, layer by layer in graph order, learned rounding
/// fixes term 1 on inputs that already carry the upstream terms and term 2 learns its rounding against what term 1
/// leaves (<see cref="Selection.WriteLearned"/>): learned codes absorb the error of earlier layers, so terms added
/// upstream afterwards would leave that absorption wrong.
/// </summary>
public static class MultipointStep
{
    /// <summary>Term 2's output is quantized on ±this many of its largest channel RMS (8-bit: its noise sits ~35 dB under term 2, itself ~15 dB under the output).</summary>
    public const double SecondTermRangeInRms = 8;

    /// <param name="Macs">The layer's multiply-adds per sample with one term.</param>
    /// <param name="OneTermError">Σ over the layer's output channels of the squared output error (vs the FP32 layer) per sample with one term.</param>
    /// <param name="Error">The same with the chosen second terms.</param>
    /// <param name="Energy">Σ over channels of the FP32 layer's squared output per sample.</param>
    public sealed record Layer(string Weight, string Op, string Form, int Rows, int TermRows, long Macs, long ExtraMacs, double OneTermError, double Error, double Energy);

    /// <param name="Budget">The fraction of the model's MACs asked for.</param>
    public sealed record Result(double Budget, long ModelMacs, long ExtraMacs, int Samples, IReadOnlyList<Layer> Layers, IReadOnlyList<string> Kept, double Seconds,
        IReadOnlyDictionary<string, double> WeightSqnrDb)
    {
        public double ExtraFraction => ExtraMacs / (double)Math.Max(1, ModelMacs);
    }

    /// <summary>One layer measured: its second term, each channel's gain, its cost.</summary>
    internal sealed record Plan(RoundingStep.Weight Weight, WeightRows Rows, QuantizedWeight Second, float[] Residual, RowGain[] Gains, long Macs, double Positions, int CodeOffset, BranchForm Form)
    {
        /// <summary>One channel's term in the scatter form: its K multiply-adds per position, and its share of the one-hot placement (N per position).</summary>
        public long RowMacs => (long)Math.Round((Rows.K + Rows.Rows) * Positions);

        public long ExtraMacs(int chosen) => chosen == 0 ? 0 : Form == BranchForm.Padded || chosen == Rows.Rows ? Macs : chosen * RowMacs;
    }

    /// <summary>Measures every layer, chooses the channels, writes nearest-rounded second terms.</summary>
    public static Result Apply(RoundingStep.Inputs inputs, OnnxGraph quantized, QuantizationOptions options, IReadOnlyList<ModelFeed> batches,
        RunnerOptions runner, ProgressReporter progress, long budgetBytes)
    {
        var selection = Select(inputs, quantized, options, batches, runner, progress, budgetBytes);
        foreach (var plan in selection.Plans)
            if (selection.Chosen.TryGetValue(plan.Weight.Name, out var rows)) selection.Write(quantized, plan, rows);
        quantized.SortNodes();
        return selection.Result();
    }

    /// <summary>Measures every layer of <paramref name="quantized"/> as it is and chooses where the budget goes; writes nothing.</summary>
    public static Selection Select(RoundingStep.Inputs inputs, OnnxGraph quantized, QuantizationOptions options, IReadOnlyList<ModelFeed> batches,
        RunnerOptions runner, ProgressReporter progress, long budgetBytes)
    {
        var clock = Stopwatch.StartNew();
        var macs = MacCount.PerSample(inputs.Reference, batches[0], runner);
        var selection = new Selection(options, macs.Sum(m => m.Macs), batches.Sum(b => b.Batch), clock);
        foreach (var (node, m) in macs)
            if (node.Input.Count > 1) selection.LayerMacs.TryAdd(node.Input[1], m);
        progress.Start("multipoint (second terms, layers)", inputs.Weights.Count);
        for (int i = 0; i < inputs.Weights.Count; i++)
        {
            var w = inputs.Weights[i];
            if (selection.Refusal(quantized, w) is string why) selection.Kept.Add($"{w.Name}: {why}");
            else
            {
                var rows = WeightRows.Of(w.Use.Node, w.Use.InputIndex, w.Shape)!;
                var grams = RoundingStep.CollectGrams(inputs.Reference, w, quantized, rows, batches, runner, budgetBytes);
                selection.Plans.Add(selection.Measure(quantized, w, grams, learned: false));
                MemoryUse.Release();
            }
            progress.Report(i + 1);
        }
        progress.Finish();

        var candidates = new List<TermCandidate>();
        for (int p = 0; p < selection.Plans.Count; p++)
        {
            var plan = selection.Plans[p];
            double energy = Math.Max(1e-30, plan.Gains.Sum(g => g.Energy));
            if (plan.Form == BranchForm.Padded)
                candidates.Add(new TermCandidate(p, Enumerable.Range(0, plan.Rows.Rows).Where(r => plan.Gains[r].Gain > 0).ToArray(), plan.Macs,
                    plan.Gains.Where(g => g.Gain > 0).Sum(g => g.Gain) / energy));
            else
                for (int r = 0; r < plan.Rows.Rows; r++)
                    candidates.Add(new TermCandidate(p, [r], plan.RowMacs, plan.Gains[r].Gain / energy));
        }
        foreach (var group in TermSelection.Choose(candidates, (long)Math.Floor(options.Multipoint * selection.ModelMacs)).GroupBy(c => c.Layer))
            selection.Chosen[selection.Plans[group.Key].Weight.Name] = group.SelectMany(c => c.Rows).Distinct().Order().ToArray();
        return selection;
    }

    /// <summary>What <see cref="Select"/> measured and chose, and what has been written since.</summary>
    public sealed class Selection
    {
        private readonly QuantizationOptions _options;
        private readonly Stopwatch _clock;
        private readonly IScaleLoss _loss;
        private readonly Dictionary<string, double> _sqnr = new(StringComparer.Ordinal);
        /// <summary>Layers re-measured when written (learned rounding), by weight name.</summary>
        private readonly Dictionary<string, Plan> _written = new(StringComparer.Ordinal);

        internal Selection(QuantizationOptions options, long modelMacs, int samples, Stopwatch clock)
        {
            _options = options;
            _clock = clock;
            _loss = ScaleLosses.Create(options.ResolvedWeightLoss, options.Percentile);
            ModelMacs = modelMacs;
            Samples = samples;
        }

        public long ModelMacs { get; }
        public int Samples { get; }
        internal Dictionary<string, long> LayerMacs { get; } = new(StringComparer.Ordinal);
        internal List<Plan> Plans { get; } = [];
        internal List<string> Kept { get; } = [];
        /// <summary>Weight name → the output channels given a second term, ascending.</summary>
        public Dictionary<string, int[]> Chosen { get; } = new(StringComparer.Ordinal);

        internal string? Refusal(OnnxGraph quantized, RoundingStep.Weight w)
        {
            if (WeightRows.Of(w.Use.Node, w.Use.InputIndex, w.Shape) is null) return $"{w.Use.Node.OpType} weights of this layout keep one term";
            if (SecondTermBranch.Unsupported(quantized, w.Use.Node, w.Use.InputIndex) is string why) return why;
            return LayerMacs.ContainsKey(w.Name) ? null : "no multiply-add count";
        }

        /// <summary>
        /// The layer's second term on its current term 1 and each channel's gain over <paramref name="grams"/>; with
        /// <paramref name="learned"/>, term 2's codes are learned (AdaRound) against what term 1 leaves of the FP32 output.
        /// </summary>
        internal Plan Measure(OnnxGraph quantized, RoundingStep.Weight w, GroupGrams[] grams, bool learned)
        {
            var node = w.Use.Node;
            var rows = WeightRows.Of(node, w.Use.InputIndex, w.Shape)!;
            var dq = quantized.Producer(node.Input[w.Use.InputIndex])!;
            var codes = Codes.Read(quantized.Initializer(dq.Input[0])!, out int offset);
            var scales = quantized.InitializerFloats(dq.Input[1]);
            int axis = scales.Length == 1 ? -1 : (int)NodeAttributes.GetInt(dq, "axis", 1);
            var first = new QuantizedWeight(codes, scales, axis, 0);
            var pairs = _options.Guard == SaturationGuard.PairBound ? new PairConstraint(QdqRewriter.Reduction(node, w.Shape), _options.X86ActivationMax) : null;
            var spec = _options.WeightSpecFor(w.Name);
            var firstValues = first.Dequantized(w.Shape);
            var residual = ResidualTerm.Residual(w.Values, firstValues);
            var second = ResidualTerm.Second(residual, w.Shape, first.Axis, _loss, spec, pairs);
            var secondCodes = (int[])second.Values.Clone();
            var solver = new AdaRoundOptions { Iterations = _options.RoundingIterations };
            var gains = new RowGain[rows.Rows];
            Parallel.For(0, rows.Rows, Parallelism.Bounded, r =>
            {
                var g = grams[rows.GroupOf(r)];
                var problem = RowProblem.Asymmetric(rows.Row(w.Values, r), g.Quantized, g.Cross, g.Reference);
                var w1 = rows.Row(firstValues, r);
                float s2 = second.Scales[second.Scales.Length == 1 ? 0 : r];
                if (learned)
                {
                    var outcome = AdaRound.Row(rows.Row(residual, r), s2, spec.Range, RowGain.SecondTermProblem(problem, w1), solver, rows.Row(second.Values, r));
                    for (int k = 0; k < rows.K; k++) secondCodes[rows.Index(r, k)] = outcome.Codes[k];
                }
                var w2 = new float[rows.K];
                for (int k = 0; k < rows.K; k++) w2[k] = s2 * secondCodes[rows.Index(r, k)];
                gains[r] = RowGain.Of(problem, w1, w2);
            });
            if (learned && pairs is not null && !pairs.Layout.AccumulatesExactlyOnX86)
                PairBound.Restore(pairs.Layout, secondCodes, second.Values, _options.X86ActivationMax);
            long m = LayerMacs[w.Name];
            var form = (node.OpType == "Conv" && rows.Groups > 1) || (_options.MultipointForm == BranchForm.Auto && rows.K <= rows.Rows) || _options.MultipointForm == BranchForm.Padded
                ? BranchForm.Padded : BranchForm.Scatter;
            return new Plan(w, rows, second with { Values = secondCodes }, residual, gains, m, m / (double)((long)rows.Rows * rows.K), offset, form);
        }

        /// <summary>
        /// Learned rounding's hook, called once term 1 of <paramref name="w"/> is learned on inputs that carry every
        /// upstream term: a chosen layer gets its term 2 learned on the same Grams and written.
        /// </summary>
        public void WriteLearned(OnnxGraph quantized, RoundingStep.Weight w, GroupGrams[] grams)
        {
            if (!Chosen.TryGetValue(w.Name, out var rows)) return;
            var plan = Measure(quantized, w, grams, learned: true);
            _written[w.Name] = plan;
            // Measured again on the inputs as they are now, a chosen channel whose term no longer helps is left out.
            rows = rows.Where(r => plan.Gains[r].Gain > 0).ToArray();
            if (rows.Length == 0)
            {
                Chosen.Remove(w.Name);
                return;
            }
            Chosen[w.Name] = rows;
            Write(quantized, plan, rows);
            quantized.SortNodes();
        }

        internal void Write(OnnxGraph quantized, Plan plan, int[] rows)
        {
            double rms = rows.Max(r => Math.Sqrt(Math.Max(0, plan.Gains[r].SecondTermEnergy) / (Samples * plan.Positions)));
            var spec = _options.ActivationSpec.Range;
            int zero = spec.IsSigned ? 0 : (spec.Max + spec.Min + 1) / 2;
            float scale = (float)Math.Max(rms * SecondTermRangeInRms / (spec.Max - zero), 1e-12);
            SecondTermBranch.Add(quantized, plan.Weight.Use.Node, plan.Weight.Use.InputIndex, plan.Weight.Shape, plan.Rows, plan.Second, rows,
                plan.Form, scale, zero, spec, plan.CodeOffset);
            _sqnr[plan.Weight.Name] = TwoTermSqnr(plan, rows);
        }

        public Result Result()
        {
            var layers = new List<Layer>();
            foreach (var measured in Plans)
            {
                var plan = _written.GetValueOrDefault(measured.Weight.Name, measured);
                int[] rows = Chosen.GetValueOrDefault(plan.Weight.Name, []);
                double oneTerm = plan.Gains.Sum(g => g.OneTermError);
                double error = oneTerm - rows.Sum(r => plan.Gains[r].Gain);
                layers.Add(new Layer(plan.Weight.Name, plan.Weight.Use.Node.OpType, plan.Form == BranchForm.Padded ? "padded" : "scatter", plan.Rows.Rows, rows.Length,
                    plan.Macs, plan.ExtraMacs(rows.Length), oneTerm / Samples, error / Samples, plan.Gains.Sum(g => g.Energy) / Samples));
            }
            return new Result(_options.Multipoint, ModelMacs, layers.Sum(l => l.ExtraMacs), Samples, layers, Kept, _clock.Elapsed.TotalSeconds, _sqnr);
        }
    }

    /// <summary>10·log10(Σw² / Σ(error)²) with the chosen rows' second terms in.</summary>
    private static double TwoTermSqnr(Plan plan, int[] chosen)
    {
        var w = plan.Weight.Values;
        var term = plan.Second.Dequantized(plan.Weight.Shape);
        var rows = plan.Rows;
        var set = new HashSet<int>(chosen);
        double signal = 0, noise = 0;
        for (int r = 0; r < rows.Rows; r++)
            for (int k = 0; k < rows.K; k++)
            {
                int i = rows.Index(r, k);
                double e = plan.Residual[i] - (set.Contains(r) ? term[i] : 0);
                signal += w[i] * (double)w[i];
                noise += e * e;
            }
        return Sqnr.Decibels(signal, noise);
    }
}
