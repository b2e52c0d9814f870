using System.Diagnostics;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;

namespace PtqTool.Pipeline;

/// <summary>
/// The input Grams Σ xᵀx of the MatMuls that will run as MatMulNBits, for `--int4-rounding gptq`: one ONNX Runtime
/// model, the float (folded, smoothed) graph with, per distinct MatMul input x of width K, Reshape(x, [−1, K]) →
/// Transpose → MatMul as its outputs, run over calibration samples and summed in double. Every row of x counts,
/// padded sequence positions included (they are rows the model computes). Memory: the Grams (K² doubles per distinct
/// input), never the data.
/// </summary>
public static class MatMulGramStep
{
    public const int DefaultSamples = 128;
    private const int RunSamples = 8;

    public sealed record Result(IReadOnlyDictionary<string, double[]> Grams, int Samples, double Seconds);

    /// <summary>The distinct activation inputs of MatMulNBits-eligible MatMuls and their widths K.</summary>
    public static Dictionary<string, int> Inputs(OnnxGraph graph)
    {
        var inputs = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var node in graph.Graph.Node)
            if (MatMulNBits.Eligible(graph, node)) inputs.TryAdd(node.Input[0], (int)graph.Initializer(node.Input[1])!.Dims[0]);
        return inputs;
    }

    public static Result? Collect(PreparedModel model, QuantizeRequest request, FloatTensor? synthetic)
    {
        var inputs = Inputs(model.Folded);
        if (inputs.Count == 0) return null;
        var clock = Stopwatch.StartNew();
        var gramModel = model.Folded.Model.Clone();
        var graph = new OnnxGraph(gramModel, model.Folded.BaseDirectory);
        gramModel.Graph.Output.Clear();
        var outputs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (x, k) in inputs)
        {
            string shape = graph.UniqueName("ptq_gram_shape");
            graph.AddInitializer(TensorData.FromInt64(shape, [2], [-1, k]));
            string rows = graph.UniqueName("ptq_gram_rows"), transposed = graph.UniqueName("ptq_gram_rows_t"), gram = graph.UniqueName("ptq_gram");
            graph.AddNode(NodeAttributes.Node("Reshape", graph.UniqueName("ptq_gram_reshape"), [x, shape], [rows]));
            graph.AddNode(NodeAttributes.Node("Transpose", graph.UniqueName("ptq_gram_transpose"), [rows], [transposed], NodeAttributes.Ints("perm", [1, 0])));
            graph.AddNode(NodeAttributes.Node("MatMul", graph.UniqueName("ptq_gram_matmul"), [transposed, rows], [gram]));
            graph.AddOutput(gram);
            outputs[x] = gram;
        }
        var sums = inputs.ToDictionary(kv => kv.Key, kv => new double[kv.Value * kv.Value], StringComparer.Ordinal);
        int wanted = request.RoundingSamples ?? DefaultSamples, samples = 0;
        var names = outputs.Values.ToList();
        using (var runner = OrtRunner.FromModel(gramModel, new RunnerOptions { Threads = request.Threads, MemoryArena = false }, "MatMul input Gram model"))
            // Runs of at most 8 samples (or the model's fixed batch): the Gram model holds every activation of a run.
            foreach (var part in ScaleRefinementStep.Parts(model, request, synthetic, wanted, runner.FixedBatch, RunSamples))
            {
                var result = runner.Run(part, names);
                foreach (var (x, gram) in outputs)
                {
                    var g = result[gram].Data;
                    var sum = sums[x];
                    for (int i = 0; i < g.Length; i++) sum[i] += g[i];
                }
                samples += part.Batch;
            }
        return samples == 0 ? null : new Result(sums, samples, clock.Elapsed.TotalSeconds);
    }
}
