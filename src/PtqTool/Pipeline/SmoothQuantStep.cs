using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Rewrite;
using PtqTool.Rewrite.Handlers;

namespace PtqTool.Pipeline;

/// <summary>What --smoothquant did: the LayerNorms smoothed, the samples their channel maxima came from, the largest factor.</summary>
public sealed record SmoothingSummary(double Alpha, int Sites, int Samples, double LargestFactor, double SmallestFactor);

/// <summary>
/// --smoothquant (auto: α 0.5 where a LayerNorm feeds MatMul weights and calibration samples are given): measures each smoothable LayerNorm output's per-channel max |x| on up to <see cref="Samples"/>
/// calibration samples (the FP32 folded model), applies <see cref="SmoothQuant"/> to the folded graph, and plans the
/// rewrite again on it. Calibration then observes the smoothed tensors.
/// </summary>
public static class SmoothQuantStep
{
    public const int Samples = 64;

    /// <summary>The paper's α, and what auto uses (docs/transformers.md measures 0.5 on MiniLM).</summary>
    public const double DefaultAlpha = 0.5;

    public static (PreparedModel Model, SmoothingSummary? Summary) Apply(PreparedModel model, QuantizeRequest request, ProgressReporter progress)
    {
        if (request.SmoothQuantAlpha is not double alpha) return (model, null);
        var sites = SmoothQuant.Sites(model.Folded);
        if (sites.Count == 0)
        {
            if (request.SmoothQuantExplicit) progress.Warn("note: --smoothquant: no LayerNorm here is read by a MatMul with a constant weight; nothing smoothed");
            return (model, request.SmoothQuantExplicit ? new SmoothingSummary(alpha, 0, 0, 1, 1) : null);
        }
        var files = Subset.Spread(model.ListSamples(request.CalibDir!), Samples);
        var tensors = sites.Select(s => s.Tensor).ToList();
        var max = new Dictionary<string, float[]>(StringComparer.Ordinal);
        int seen = 0;
        using (var runner = OrtRunner.FromModel(OutputGroups.Augment(model.Folded.Model, tensors), new RunnerOptions { Threads = request.Threads }, "folded model"))
            foreach (var batch in model.Reader(files, request.Batch, request.Strict).Read())
            {
                runner.Visit(batch.Input, tensors, (name, data, shape) =>
                {
                    int k = shape[^1];
                    if (!max.TryGetValue(name, out var m)) max[name] = m = new float[k];
                    for (int i = 0; i < data.Length; i++) m[i % k] = Math.Max(m[i % k], Math.Abs(data[i]));
                });
                seen += batch.Input.Batch;
            }
        double largest = double.MinValue, smallest = double.MaxValue;
        foreach (var site in sites)
        {
            var s = SmoothQuant.Factors(max[site.Tensor], site.Weights.Select(w => SmoothQuant.RowMax(model.Folded.Initializer(w)!)).ToList(), alpha);
            largest = Math.Max(largest, s.Max());
            smallest = Math.Min(smallest, s.Min());
            SmoothQuant.Apply(model.Folded, site, s);
        }
        progress.Message($"smoothquant: {sites.Count} LayerNorm output(s) smoothed into their MatMul weights (alpha {alpha}, channel maxima on {seen} samples, factors {smallest:G3}..{largest:G3})");
        return (model with { Plan = PlanBuilder.Build(model.Folded, model.Options) }, new SmoothingSummary(alpha, sites.Count, seen, largest, smallest));
    }
}
