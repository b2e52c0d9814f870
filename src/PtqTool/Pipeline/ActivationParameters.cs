using PtqTool.Calibration;
using PtqTool.Rewrite;
using PtqTool.Scales;
using PtqTool.Scales.Losses;

namespace PtqTool.Pipeline;

/// <summary>Chooses every quantized activation's scale and zero point: one choice per parameter group, from the merged histograms of its members.</summary>
public static class ActivationParameters
{
    public static Dictionary<string, QuantParams> Choose(QuantizationPlan plan, ActivationStatistics stats, QuantizationOptions options)
    {
        var loss = ScaleLosses.Create(options.Loss, options.Percentile);
        var spec = options.ActivationSpec;
        var result = new Dictionary<string, QuantParams>(StringComparer.Ordinal);
        var groups = plan.Groups().OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
        // The plan's union-find compresses paths as it is read: gather every group's statistics members up front.
        var statsMembers = groups.Select(g => plan.StatsOf(g.Key).OrderBy(t => t, StringComparer.Ordinal).ToList()).ToList();
        var chosen = new QuantParams[groups.Count];
        Parallel.For(0, groups.Count, Parallelism.Bounded, i =>
        {
            var members = groups[i].Value;
            var fixedRange = members.Where(plan.FixedRanges.ContainsKey).Select(m => plan.FixedRanges[m]).ToList();
            if (fixedRange.Count > 0)
            {
                chosen[i] = RangeMapping.FromRange(fixedRange.Min(r => r.Lo), fixedRange.Max(r => r.Hi), spec);
                return;
            }
            var histogram = new Histogram();
            foreach (var t in statsMembers[i]) histogram.Merge(stats.Tensors[t]);
            // A folded Relu lives on in the quantizer: the range must start at exactly 0.
            var groupSpec = members.Any(plan.ClipAtZero.Contains) ? spec with { PinnedZeroPoint = spec.Range.Min } : spec;
            var p = loss.Choose(new HistogramDistribution(histogram), groupSpec);
            // A folded Clip's max: the quantizer's top level may not exceed it (values above saturate, as Clip does).
            var limits = members.Where(plan.UpperLimits.ContainsKey).Select(m => plan.UpperLimits[m]).ToList();
            if (limits.Count > 0 && p.Scale * (spec.Range.Max - p.ZeroPoint) > limits.Min())
                p = p with { Scale = limits.Min() / (spec.Range.Max - p.ZeroPoint) };
            chosen[i] = p;
        });
        for (int i = 0; i < groups.Count; i++)
            foreach (var member in groups[i].Value) result[member] = chosen[i];
        SetScaledCopies(plan, result);
        return result;
    }

    /// <summary>y = k·x read from x's codes: scale k·s_x, x's zero point (QuantizationPlan.ScaledCopies), in graph order so chains compose.</summary>
    private static void SetScaledCopies(QuantizationPlan plan, Dictionary<string, QuantParams> result)
    {
        foreach (var t in plan.QdqTensors)
            if (plan.IsScaledCopy(t))
            {
                var (_, source, k) = plan.ScaledCopies[t];
                var p = result[source];
                result[t] = new QuantParams(p.Scale * k, p.ZeroPoint);
            }
    }

    /// <summary>
    /// The parameters with the scale of each group's members multiplied by its factor (zero points kept), and scaled
    /// copies following their sources.
    /// </summary>
    public static Dictionary<string, QuantParams> Rescaled(QuantizationPlan plan, IReadOnlyDictionary<string, QuantParams> parameters,
        IReadOnlyDictionary<string, IReadOnlyList<string>> groups, IReadOnlyDictionary<string, double> factors)
    {
        var result = new Dictionary<string, QuantParams>(parameters, StringComparer.Ordinal);
        foreach (var (key, f) in factors)
            foreach (var m in groups[key])
                result[m] = result[m] with { Scale = parameters[m].Scale * f };
        SetScaledCopies(plan, result);
        return result;
    }

    /// <summary>
    /// The largest factor a group's scale may take: a folded Clip's max caps the quantizer's top level (values above it
    /// must saturate as the Clip did); unbounded otherwise.
    /// </summary>
    public static double LargestFactor(QuantizationPlan plan, IReadOnlyList<string> members, QuantParams p, QuantSpec spec)
    {
        double largest = double.PositiveInfinity;
        foreach (var m in members)
            if (plan.UpperLimits.TryGetValue(m, out float limit))
                largest = Math.Min(largest, limit / (p.Scale * (spec.Range.Max - p.ZeroPoint)));
        return largest;
    }
}
