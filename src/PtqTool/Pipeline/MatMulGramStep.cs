using System.Diagnostics;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;

namespace PtqTool.Pipeline;

/// <summary>
/// The input Grams Σ xᵀx of the MatMuls that will run as MatMulNBits, for `--int4-rounding gptq`: one ONNX Runtime
/// model, the float (folded, smoothed) graph with, per distinct MatMul input x of width K, Reshape(x, [−1, K]) →
/// Transpose → MatMul as its outputs, run over calibration samples and summed in double. Rows of padded sequence
/// positions are left out where the model has an attention-mask input (<see cref="PaddingMask"/>). Memory: the Grams
/// (K² doubles per distinct input), never the data.
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

    /// <summary>
    /// The attention-mask input (<see cref="PaddingMask.Find"/>, on a first run of a few samples) and the inputs that
    /// are [N, S, K] over its [N, S] on that run (the float graph's ranks are rarely known statically: reshapes and
    /// LayerNorm units hide them). None for a model with one input.
    /// </summary>
    private static (string? Mask, HashSet<string> Rows) MaskedInputs(PreparedModel model, QuantizeRequest request, FloatTensor? synthetic, IReadOnlyCollection<string> inputs)
    {
        var rows = new HashSet<string>(StringComparer.Ordinal);
        if (model.Inputs.Count < 2) return (null, rows);
        var probe = model.Folded.Model.Clone();
        var graph = new OnnxGraph(probe, model.Folded.BaseDirectory);
        var computed = inputs.Where(x => !graph.IsGraphInput(x)).ToList();
        if (computed.Count > 0) probe.Graph.Output.Clear();
        foreach (var x in computed) graph.AddOutput(x);
        using var runner = OrtRunner.FromModel(probe, new RunnerOptions { Threads = request.Threads, MemoryArena = false }, "float model (MatMul input shapes)");
        var first = ScaleRefinementStep.Parts(model, request, synthetic, RunSamples, runner.FixedBatch, RunSamples).FirstOrDefault();
        if (first is null || PaddingMask.Find(first) is not var (mask, values)) return (null, rows);
        foreach (var x in inputs.Where(graph.IsGraphInput)) if (PaddingMask.Covers(first[x].Shape, values)) rows.Add(x);
        if (computed.Count > 0) runner.Visit(first, computed, (name, _, shape) => { if (PaddingMask.Covers(shape, values)) rows.Add(name); });
        return (mask, rows);
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
        // Text encoders: the rows of inputs that are [N, S, K] over the attention mask's [N, S] are summed with padded
        // positions left out (PaddingMask): each row times its mask value.
        var (mask, byMask) = MaskedInputs(model, request, synthetic, inputs.Keys);
        string? maskRows = null;
        if (byMask.Count > 0)
        {
            string column = graph.UniqueName("ptq_gram_mask_shape"), cast = graph.UniqueName("ptq_gram_mask_float");
            graph.AddInitializer(TensorData.FromInt64(column, [2], [-1, 1]));
            graph.AddNode(NodeAttributes.Node("Cast", graph.UniqueName("ptq_gram_mask_cast"), [mask!], [cast], NodeAttributes.Int("to", ElementType.Float)));
            maskRows = graph.UniqueName("ptq_gram_mask_rows");
            graph.AddNode(NodeAttributes.Node("Reshape", graph.UniqueName("ptq_gram_mask_reshape"), [cast, column], [maskRows]));
        }
        foreach (var (x, k) in inputs)
        {
            string shape = graph.UniqueName("ptq_gram_shape");
            graph.AddInitializer(TensorData.FromInt64(shape, [2], [-1, k]));
            string rows = graph.UniqueName("ptq_gram_rows"), transposed = graph.UniqueName("ptq_gram_rows_t"), gram = graph.UniqueName("ptq_gram");
            graph.AddNode(NodeAttributes.Node("Reshape", graph.UniqueName("ptq_gram_reshape"), [x, shape], [rows]));
            if (byMask.Contains(x))
            {
                string kept = graph.UniqueName("ptq_gram_rows_kept");
                graph.AddNode(NodeAttributes.Node("Mul", graph.UniqueName("ptq_gram_mask_mul"), [rows, maskRows!], [kept]));
                rows = kept;
            }
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
