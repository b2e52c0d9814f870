using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Scales;
using PtqTool.Onnx.Proto;

namespace PtqTool.Evaluation;

/// <summary>One quantized tensor's error against FP32 on a few batches.</summary>
public sealed record LayerError(string Tensor, string Producer, double SqnrDb, double Scale, int ZeroPoint);

/// <summary>
/// Per-layer SQNR: the FP32 model with every quantized tensor T exposed, the quantized model with every T_dequantized
/// exposed, both run on the same batches, a group of tensors at a time within a memory budget (<see cref="OutputGroups"/>),
/// keeping only running sums. Errors accumulate through the network, so this shows where they grow.
/// </summary>
public static class LayerErrors
{
    public static List<LayerError> Measure(ModelProto fp32, ModelProto quantized, IReadOnlyList<string> tensors,
        Func<string, string> dequantizedName, Func<string, (double Scale, int ZeroPoint)> parameters,
        IReadOnlyList<SampleBatch> batches, RunnerOptions? options = null, long budgetBytes = OutputGroups.DefaultBudgetBytes, Action? release = null)
    {
        var fGraph = new OnnxGraph(fp32);
        var qGraph = new OnnxGraph(quantized);
        // Tensors both models have: a quantized tensor read only through a scaled copy has no DequantizeLinear of its own.
        var present = tensors.Where(t => (fGraph.Producer(t) is not null || fGraph.IsGraphInput(t)) && qGraph.Producer(dequantizedName(t)) is not null).ToList();
        var signal = new double[present.Count];
        var noise = new double[present.Count];
        var index = present.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i, StringComparer.Ordinal);
        options ??= new RunnerOptions();
        if (present.Count == 0 || batches.Count == 0) return [];

        void Accumulate(OrtRunner f, OrtRunner q, OutputGroup g)
        {
            // FP32 outputs are copied once into buffers reused piece after piece; the quantized ones are read in place
            // from ONNX Runtime's buffers, so a group costs its outputs once, not one garbage copy per run.
            var deq = g.Tensors.Select(dequantizedName).ToList();
            var original = g.Tensors.ToDictionary(dequantizedName, t => t, StringComparer.Ordinal);
            var buffers = new Dictionary<string, float[]>(StringComparer.Ordinal);
            foreach (var batch in batches)
                foreach (var piece in OutputGroups.Pieces(batch.Input, g.MaxBatch))
                {
                    f.Visit(piece, g.Tensors, (name, data, _) =>
                    {
                        if (!buffers.TryGetValue(name, out var buffer) || buffer.Length < data.Length) buffers[name] = buffer = new float[data.Length];
                        data.CopyTo(buffer);
                    });
                    q.Visit(piece, deq, (name, b, _) =>
                    {
                        string t = original[name];
                        int i = index[t];
                        var a = buffers[t];
                        double sig = 0, err = 0;
                        for (int j = 0; j < b.Length; j++)
                        {
                            double e = a[j] - b[j];
                            sig += a[j] * (double)a[j];
                            err += e * e;
                        }
                        signal[i] += sig;
                        noise[i] += err;
                    });
                }
        }

        // A group's FP32 copy and both models' ONNX Runtime buffers are alive at once: a third of the budget each.
        OutputGroups plan;
        using (var fAll = OrtRunner.FromModel(OutputGroups.Augment(fp32, present), options, "FP32 model"))
        {
            plan = OutputGroups.Plan(fAll, batches[0].Input, present, batches.Max(b => b.Input.Batch), budgetBytes / 3);
            if (!plan.SeparateSessions)
            {
                using var qAll = OrtRunner.FromModel(OutputGroups.Augment(quantized, present.Select(dequantizedName)), options, "quantized model");
                Accumulate(fAll, qAll, plan.Groups[0]);
            }
        }
        if (plan.SeparateSessions)
            foreach (var g in plan.Groups)
            {
                using var f = OrtRunner.FromModel(OutputGroups.Augment(fp32, g.Tensors), options, "FP32 model");
                using var q = OrtRunner.FromModel(OutputGroups.Augment(quantized, g.Tensors.Select(dequantizedName)), options, "quantized model");
                Accumulate(f, q, g);
                f.Dispose();
                q.Dispose();
                release?.Invoke();
            }
        return present.Select((t, i) =>
        {
            var producer = fGraph.Producer(t);
            var (scale, zp) = parameters(t);
            return new LayerError(t, producer is null ? "input" : $"{producer.OpType} {producer.Name}".Trim(), Sqnr.Decibels(signal[i], noise[i]), scale, zp);
        }).OrderBy(e => e.SqnrDb).ToList();
    }
}
