using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Scales;
using PtqTool.Onnx.Proto;

namespace PtqTool.Evaluation;

/// <summary>One quantized tensor's error against FP32 on a few batches.</summary>
public sealed record LayerError(string Tensor, string Producer, double SqnrDb, double Scale, int ZeroPoint);

/// <summary>
/// Per-layer SQNR: the FP32 model with every quantized tensor T exposed, the quantized model with every T_dequantized
/// exposed, both run on the same batches. Errors accumulate through the network, so this shows where they grow.
/// </summary>
public static class LayerErrors
{
    public static List<LayerError> Measure(ModelProto fp32, ModelProto quantized, IReadOnlyList<string> tensors,
        Func<string, string> dequantizedName, Func<string, (double Scale, int ZeroPoint)> parameters,
        IReadOnlyList<SampleBatch> batches, RunnerOptions? options = null)
    {
        var fGraph = new OnnxGraph(fp32.Clone());
        var qGraph = new OnnxGraph(quantized.Clone());
        var present = tensors.Where(t => fGraph.Producer(t) is not null || fGraph.IsGraphInput(t)).ToList();
        foreach (var t in present)
        {
            fGraph.AddOutput(t);
            qGraph.AddOutput(dequantizedName(t));
        }
        using var f = OrtRunner.FromModel(fGraph.Model, options, "FP32 model");
        using var q = OrtRunner.FromModel(qGraph.Model, options, "quantized model");
        var signal = new double[present.Count];
        var noise = new double[present.Count];
        foreach (var batch in batches)
        {
            var fo = f.Run(batch.Input, present);
            var qo = q.Run(batch.Input, present.Select(dequantizedName).ToList());
            for (int i = 0; i < present.Count; i++)
            {
                var a = fo[present[i]].Data;
                var b = qo[dequantizedName(present[i])].Data;
                for (int j = 0; j < a.Length; j++)
                {
                    double e = a[j] - b[j];
                    signal[i] += a[j] * (double)a[j];
                    noise[i] += e * e;
                }
            }
        }
        return present.Select((t, i) =>
        {
            var producer = fGraph.Producer(t);
            var (scale, zp) = parameters(t);
            return new LayerError(t, producer is null ? "input" : $"{producer.OpType} {producer.Name}".Trim(), Sqnr.Decibels(signal[i], noise[i]), scale, zp);
        }).OrderBy(e => e.SqnrDb).ToList();
    }
}
