using Microsoft.ML.OnnxRuntime;
using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Pipeline;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Data;

namespace PtqTool.Tests.Pipeline;

/// <summary>
/// `--rounding brecq` on a one-layer encoder with an attention mask: x [N, S, K] (float) and an int64 [N, S] mask made
/// additive (Cast, 1 − m, ×(−10000), Unsqueeze) beside x. The mask is a side tensor: the attention sub-block reads it
/// as a second input, its nodes stay outside every block, and the block's loss leaves the padded positions out.
/// </summary>
public class TransformerBlockReconstructionTests
{
    private const int K = 8, Sequence = 6, Files = 20;

    private static ModelProto Build(string maskName)
    {
        var rng = new Random(7);
        float[] Random(int n, double scale) => Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale)).ToArray();
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "encoder_layer" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        var g = new OnnxGraph(model);
        g.Graph.Input.Add(TwoInputModel.Value("x", ElementType.Float, [-1, Sequence, K]));
        g.Graph.Input.Add(TwoInputModel.Value(maskName, ElementType.Int64, [-1, Sequence]));
        foreach (var w in new[] { "Wq", "Wk", "Wv", "Wo" }) g.AddInitializer(TensorData.FromFloats(w, [K, K], Random(K * K, 0.6)));
        g.AddInitializer(TensorData.FromFloats("W1", [K, 2 * K], Random(2 * K * K, 0.6)));
        g.AddInitializer(TensorData.FromFloats("W2", [2 * K, K], Random(2 * K * K, 0.6)));
        g.AddInitializer(TensorData.FromFloats("one", [], [1]));
        g.AddInitializer(TensorData.FromFloats("big", [], [-10000]));
        g.AddInitializer(TensorData.FromFloats("root", [], [(float)Math.Sqrt(K)]));
        g.AddInitializer(TensorData.FromInt64("axis_heads", [1], [1]));
        g.AddNode(NodeAttributes.Node("Cast", "mask_cast", [maskName], ["m"], NodeAttributes.Int("to", ElementType.Float)));
        g.AddNode(NodeAttributes.Node("Sub", "mask_invert", ["one", "m"], ["inverse"]));
        g.AddNode(NodeAttributes.Node("Mul", "mask_scale", ["inverse", "big"], ["additive"]));
        g.AddNode(NodeAttributes.Node("Unsqueeze", "mask_axis", ["additive", "axis_heads"], ["ext"]));
        g.AddNode(NodeAttributes.Node("MatMul", "q_proj", ["x", "Wq"], ["q"]));
        g.AddNode(NodeAttributes.Node("MatMul", "k_proj", ["x", "Wk"], ["k"]));
        g.AddNode(NodeAttributes.Node("MatMul", "v_proj", ["x", "Wv"], ["v"]));
        g.AddNode(NodeAttributes.Node("Transpose", "k_t", ["k"], ["kt"], NodeAttributes.Ints("perm", [0, 2, 1])));
        g.AddNode(NodeAttributes.Node("MatMul", "scores", ["q", "kt"], ["s"]));
        g.AddNode(NodeAttributes.Node("Div", "scale", ["s", "root"], ["s2"]));
        g.AddNode(NodeAttributes.Node("Add", "mask_add", ["s2", "ext"], ["s3"]));
        g.AddNode(NodeAttributes.Node("Softmax", "softmax", ["s3"], ["p"], NodeAttributes.Int("axis", -1)));
        g.AddNode(NodeAttributes.Node("MatMul", "context", ["p", "v"], ["ctx"]));
        g.AddNode(NodeAttributes.Node("MatMul", "o_proj", ["ctx", "Wo"], ["a"]));
        g.AddNode(NodeAttributes.Node("Add", "residual", ["a", "x"], ["o"]));
        g.AddNode(NodeAttributes.Node("MatMul", "ffn_in", ["o", "W1"], ["h1"]));
        g.AddNode(NodeAttributes.Node("Relu", "ffn_act", ["h1"], ["g"]));
        g.AddNode(NodeAttributes.Node("MatMul", "ffn_out", ["g", "W2"], ["h2"]));
        g.AddNode(NodeAttributes.Node("Add", "residual2", ["h2", "o"], ["y"]));
        g.Graph.Output.Add(TwoInputModel.Value("y", ElementType.Float, [-1, Sequence, K]));
        return model;
    }

    /// <summary>One sample per file: kept positions (the first 2–5) of moderate values, padded ones large and of another structure.</summary>
    private static string Samples(string dir, string maskName)
    {
        var r = new Random(9);
        Directory.CreateDirectory(dir);
        for (int f = 0; f < Files; f++)
        {
            int length = 2 + f % 4;
            var x = new float[Sequence * K];
            var mask = new long[Sequence];
            for (int s = 0; s < Sequence; s++)
            {
                mask[s] = s < length ? 1 : 0;
                for (int j = 0; j < K; j++) x[s * K + j] = s < length ? (float)(r.NextDouble() * 2 - 1) : (float)((j % 2 == 0 ? 6 : -6) * r.NextDouble());
            }
            File.WriteAllBytes(Path.Combine(dir, $"s{f:D2}.npz"), NpzWriter.Write([("x", NpyReader.Write(x, [1, Sequence, K])), (maskName, NpyReader.Write(mask, [1, Sequence]))]));
        }
        return dir;
    }

    [Fact]
    public void The_mask_is_a_side_input_of_the_attention_block_and_outside_every_block()
    {
        var model = Build("attention_mask");
        var graph = new OnnxGraph(model);
        var weights = new[] { "Wq", "Wk", "Wv", "Wo", "W1", "W2" }.Select(name =>
        {
            var node = graph.Consumers(name).Single();
            return new RoundingStep.Weight(new PtqTool.Rewrite.WeightUse(node, 1, 1, null), name, graph.InitializerFloats(name), TensorData.Shape(graph.Initializer(name)!), node.Input[0]);
        }).ToList();
        var blocks = BlockPartition.Of(model, weights);
        Assert.Equal(2, blocks.Count);
        Assert.Equal(["x", "ext"], blocks[0].Inputs);
        Assert.Equal("o", blocks[0].Output);
        Assert.Equal(["Wq", "Wk", "Wv", "Wo"], blocks[0].Layers.Select(l => l.Name));
        Assert.Null(blocks[0].Refusal);
        Assert.Equal(["o"], blocks[1].Inputs);
        Assert.Equal("y", blocks[1].Output);
        Assert.All(blocks, b => Assert.DoesNotContain(b.Nodes, n => n.Name.StartsWith("mask_", StringComparison.Ordinal) && n.Name != "mask_add"));
    }

    /// <summary>
    /// The attention block's nearest-rounding error in the report equals Σ over the fitted samples' kept positions of
    /// ‖f(x̃, ext; Ŵ) − o‖² / samples, computed here in double from ONNX Runtime's tensors: x̃ and the additive mask as the
    /// quantized model feeds the block, o from the FP32 model, Ŵ the nearest codes × scales; f written out (attention,
    /// softmax, projection, residual). With the mask input named so that it is not taken for one, every position counts.
    /// </summary>
    [Fact]
    public void The_attention_block_is_fitted_on_the_positions_the_mask_keeps()
    {
        string dir = Repo.TempDir();
        foreach (var (maskName, byMask) in new[] { ("attention_mask", true), ("keep_flags", false) })
        {
            string path = Path.Combine(dir, maskName + ".onnx");
            OnnxModelFile.Save(Build(maskName), path);
            string calib = Samples(Path.Combine(dir, "calib-" + maskName), maskName);
            string[] common = [path, "--calib", calib, "--weight-bits", "4", "--refine", "off", "--smoothquant", "off", "--output-bias-correction", "off",
                "--rounding-samples", $"{Files}", "--rounding-iterations", "40"];
            var (nearest, _, _) = CliRunner.Quantize(dir, maskName + "-nearest", common);
            var (_, report, _) = CliRunner.Quantize(dir, maskName + "-brecq", [.. common, "--rounding", "brecq"]);
            var block = report["rounding"]!["blocks"]!.AsArray()[0]!;
            Assert.Equal("brecq", block["method"]!.GetValue<string>());
            Assert.Equal(4, block["layers"]!.GetValue<int>());

            var inputs = new[] { new InputSpec("x", ElementType.Float, [-1, Sequence, K]), new InputSpec(maskName, ElementType.Int64, [-1, Sequence]) };
            var files = Directory.GetFiles(calib).Order(StringComparer.Ordinal).ToList();
            var fitted = files.Where((_, i) => i % BlockReconstructionStep.HoldOutEvery != BlockReconstructionStep.HoldOutEvery - 1).Select(f => NamedInputs.Read(f, inputs)).ToList();
            var q = new OnnxGraph(nearest.Clone());
            string xRead = q.Graph.Node.Single(n => n.Name == "q_proj").Input[0], extRead = q.Graph.Node.Single(n => n.Name == "mask_add").Input[1];
            float[] Weight(string node)
            {
                var dq = q.Producer(q.Graph.Node.Single(n => n.Name == node).Input[1])!;
                Assert.Equal("DequantizeLinear", dq.OpType);
                var codes = TensorData.ToFloats(q.Initializer(dq.Input[0])!);
                var scales = q.InitializerFloats(dq.Input[1]);
                return codes.Select((c, i) => c * scales[scales.Length == 1 ? 0 : i % K]).ToArray();
            }
            float[] wq = Weight("q_proj"), wk = Weight("k_proj"), wv = Weight("v_proj"), wo = Weight("o_proj");
            q.AddOutput(xRead);
            q.AddOutput(extRead);
            var fp32 = new OnnxGraph(Build(maskName));
            fp32.AddOutput("o");
            var exact = new RunnerOptions { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL };
            using var quantizedRun = OrtRunner.FromModel(q.Model, exact);
            using var fp32Run = OrtRunner.FromModel(fp32.Model, exact);
            double total = 0, all = 0;
            foreach (var feed in fitted)
            {
                var outputs = quantizedRun.Run(feed, [xRead, extRead]);
                var x = outputs[xRead].Data;
                var ext = outputs[extRead].Data;
                var o = fp32Run.Run(feed, ["o"])["o"].Data;
                var mask = feed[maskName].Data;
                var f = Attention(x, ext, wq, wk, wv, wo);
                for (int s = 0; s < Sequence; s++)
                {
                    double e = 0;
                    for (int j = 0; j < K; j++) e += (f[s * K + j] - (double)o[s * K + j]) * (f[s * K + j] - o[s * K + j]);
                    all += e;
                    if (mask[s] != 0) total += e;
                }
            }
            double expected = (byMask ? total : all) / fitted.Count;
            Assert.True(total < 0.5 * all, $"padded positions should dominate the unmasked error: kept {total}, all {all}");
            Assert.Equal(expected, block["nearest_error"]!.GetValue<double>(), expected * 1e-3);
        }
    }

    /// <summary>One head, o = softmax(q·kᵀ/√K + ext)·v·Wo + x, for one sample [S, K]; ext is [1, S] (added to every query row).</summary>
    private static double[] Attention(float[] x, float[] ext, float[] wq, float[] wk, float[] wv, float[] wo)
    {
        double[] Project(float[] w)
        {
            var r = new double[Sequence * K];
            for (int s = 0; s < Sequence; s++)
                for (int c = 0; c < K; c++)
                    for (int j = 0; j < K; j++) r[s * K + c] += x[s * K + j] * (double)w[j * K + c];
            return r;
        }
        double[] q = Project(wq), k = Project(wk), v = Project(wv);
        var o = new double[Sequence * K];
        for (int s = 0; s < Sequence; s++)
        {
            var logits = new double[Sequence];
            for (int t = 0; t < Sequence; t++)
            {
                for (int j = 0; j < K; j++) logits[t] += q[s * K + j] * k[t * K + j];
                logits[t] = logits[t] / Math.Sqrt(K) + ext[t];
            }
            double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));
            var context = new double[K];
            for (int t = 0; t < Sequence; t++)
                for (int j = 0; j < K; j++) context[j] += Math.Exp(logits[t] - max) / sum * v[t * K + j];
            for (int c = 0; c < K; c++)
            {
                double a = 0;
                for (int j = 0; j < K; j++) a += context[j] * wo[j * K + c];
                o[s * K + c] = a + x[s * K + c];
            }
        }
        return o;
    }
}
