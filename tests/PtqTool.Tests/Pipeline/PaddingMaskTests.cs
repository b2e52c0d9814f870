using Microsoft.ML.OnnxRuntime;
using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Pipeline;
using PtqTool.Rewrite;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Data;

namespace PtqTool.Tests.Pipeline;

/// <summary>
/// Layer fits leave out padded sequence positions: a text-like model x [N, S, K] (float) and an int64 [N, S] mask,
/// y = MatMul(Relu(x), W) · mask. Padded rows of x hold large values of another structure, so a fit that counted them would
/// fit the wrong rows. The same model with the mask input named so that it is not taken for one is the control.
/// </summary>
public class PaddingMaskTests
{
    private const int K = 64, N = 6, Sequence = 6, Files = 8;

    [Fact]
    public void The_mask_of_a_feed_is_found_by_name_and_values_and_zeroes_only_padded_rows()
    {
        var x = new FloatTensor(Enumerable.Range(0, 2 * 3 * 2).Select(i => (float)i + 1).ToArray(), [2, 3, 2]);
        var mask = new FloatTensor([1, 1, 0, 1, 0, 0], [2, 3]);
        var feed = new ModelFeed(["x", "attention_mask"], [x, mask]);
        Assert.Same(mask, PaddingMask.Of(feed));
        Assert.Equal([1f, 2, 3, 4, 0, 0, 7, 8, 0, 0, 0, 0], PaddingMask.Apply(x, mask).Data);
        // Not a mask: other values, another name, a lone input; shapes that do not match leave x as it is.
        Assert.Null(PaddingMask.Of(new ModelFeed(["x", "attention_mask"], [x, new FloatTensor([1, 2, 0, 1, 0, 0], [2, 3])])));
        Assert.Null(PaddingMask.Of(new ModelFeed(["x", "keep"], [x, mask])));
        Assert.Null(PaddingMask.Of(new ModelFeed([null], [mask])));
        Assert.Same(x, PaddingMask.Apply(x, new FloatTensor([1, 0, 1, 0], [2, 2])));
        Assert.Equal("attention_mask", PaddingMask.Find(feed)?.Name);
        Assert.Null(PaddingMask.Find(new ModelFeed(["attention_mask", "padding_mask"], [mask, mask])));
        Assert.True(PaddingMask.Covers([2, 3, 5], mask));
        Assert.False(PaddingMask.Covers([2, 3], mask));
        Assert.False(PaddingMask.Covers([3, 2, 5], mask));
    }

    private static ModelProto Build(string maskName, float[] w)
    {
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "masked_matmul" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        var g = new OnnxGraph(model);
        g.Graph.Input.Add(TwoInputModel.Value("x", ElementType.Float, [-1, -1, K]));
        g.Graph.Input.Add(TwoInputModel.Value(maskName, ElementType.Int64, [-1, -1]));
        g.AddInitializer(TensorData.FromFloats("W", [K, N], w));
        g.AddInitializer(TensorData.FromInt64("axis_last", [1], [-1]));
        // The MatMul reads a computed tensor (Relu(x)), whose shape the Gram step learns from a first run.
        g.AddNode(NodeAttributes.Node("Relu", "act", ["x"], ["r"]));
        g.AddNode(NodeAttributes.Node("MatMul", "dense", ["r", "W"], ["h"]));
        g.AddNode(NodeAttributes.Node("Cast", "mask_float", [maskName], ["m"], NodeAttributes.Int("to", ElementType.Float)));
        g.AddNode(NodeAttributes.Node("Unsqueeze", "mask_axis", ["m", "axis_last"], ["m3"]));
        g.AddNode(NodeAttributes.Node("Mul", "masked", ["h", "m3"], ["y"]));
        g.Graph.Output.Add(TwoInputModel.Value("y", ElementType.Float, [-1, -1, N]));
        return model;
    }

    /// <summary>
    /// Files of one sample each; kept rows correlated hidden-state-like values, padded rows (the last 2–4 of 6) large and
    /// of another structure. Returns the kept rows as the MatMul reads them (after the Relu).
    /// </summary>
    private static (List<float[]> Kept, string Dir) Samples(string dir, string maskName, int seed)
    {
        var r = new Random(seed);
        var kept = new List<float[]>();
        Directory.CreateDirectory(dir);
        for (int f = 0; f < Files; f++)
        {
            int length = 2 + f % 3;
            var x = new float[Sequence * K];
            var mask = new long[Sequence];
            for (int s = 0; s < Sequence; s++)
            {
                var row = new float[K];
                if (s < length)
                {
                    var z = Enumerable.Range(0, K).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
                    for (int j = 0; j < K; j++)
                        for (int d = 0; d < 4; d++) row[j] += z[(j + d) % K] * (d == 0 ? 1f : 0.8f) * (1 + j % 3);
                    kept.Add(row.Select(v => Math.Max(0, v)).ToArray());
                    mask[s] = 1;
                }
                else
                    for (int j = 0; j < K; j++) row[j] = (float)((j % 2 == 0 ? 8 : -8) * r.NextDouble());
                row.CopyTo(x, s * K);
            }
            File.WriteAllBytes(Path.Combine(dir, $"s{f}.npz"), NpzWriter.Write([("x", NpyReader.Write(x, [1, Sequence, K])), (maskName, NpyReader.Write(mask, [1, Sequence]))]));
        }
        return (kept, dir);
    }

    /// <summary>Σ over rows of ‖x(W − Ŵ)‖², by direct products.</summary>
    private static double Error(List<float[]> rows, float[] w, float[] approx)
    {
        double total = 0;
        foreach (var x in rows)
            for (int c = 0; c < N; c++)
            {
                double e = 0;
                for (int j = 0; j < K; j++) e += x[j] * ((double)w[j * N + c] - approx[j * N + c]);
                total += e * e;
            }
        return total;
    }

    [Fact]
    public void Gptq_fits_matmulnbits_weights_on_the_rows_the_mask_keeps()
    {
        var w = Enumerable.Range(0, K * N).Select(i => (float)Math.Sin(0.37 * i + 0.2)).ToArray();
        string dir = Repo.TempDir();
        double KeptError(string maskName, string rounding)
        {
            string model = Path.Combine(dir, maskName + ".onnx");
            OnnxModelFile.Save(Build(maskName, w), model);
            var (kept, calib) = Samples(Path.Combine(dir, "calib-" + maskName), maskName, seed: 5);
            var (q, _, _) = CliRunner.Quantize(dir, maskName + "-" + rounding, model, "--calib", calib, "--batch", "4", "--weight-storage", "int4",
                "--int4-rounding", rounding, "--refine", "off", "--smoothquant", "off");
            var graph = new OnnxGraph(q);
            var node = Assert.Single(q.Graph.Node, n => n.OpType == "MatMulNBits");
            var packed = new PackedWeight(K, N, MatMulNBits.BlockSize, graph.Initializer(node.Input[1])!.RawData.ToByteArray(), graph.InitializerFloats(node.Input[2]));
            return Error(kept, w, MatMulNBits.Dequantize(packed));
        }
        double nearest = KeptError("attention_mask", "nearest"), masked = KeptError("attention_mask", "gptq"), unmasked = KeptError("keep_flags", "gptq");
        Assert.True(masked < 0.8 * nearest, $"GPTQ on kept rows {masked:G4} vs nearest {nearest:G4}");
        Assert.True(masked < 0.8 * unmasked, $"GPTQ on kept rows {masked:G4} vs GPTQ on every row {unmasked:G4}");
    }

    [Fact]
    public void AdaRound_measures_and_fits_a_layer_on_the_rows_the_mask_keeps()
    {
        var w = Enumerable.Range(0, K * N).Select(i => (float)Math.Sin(0.37 * i + 0.2)).ToArray();
        string dir = Repo.TempDir();
        foreach (var (maskName, byMask) in new[] { ("attention_mask", true), ("keep_flags", false) })
        {
            string model = Path.Combine(dir, maskName + ".onnx");
            OnnxModelFile.Save(Build(maskName, w), model);
            var (kept, calib) = Samples(Path.Combine(dir, "calib-" + maskName), maskName, seed: 6);
            string[] common = [model, "--calib", calib, "--batch", "4", "--weight-bits", "4", "--refine", "off", "--smoothquant", "off"];
            var (nearest, _, _) = CliRunner.Quantize(dir, maskName + "-nearest", common);
            var (learned, report, _) = CliRunner.Quantize(dir, maskName + "-adaround", [.. common, "--rounding", "adaround", "--rounding-check", "off"]);
            var layer = Assert.Single(report["rounding"]!["layers"]!.AsArray())!;

            // The layer objective Σ‖r·W − r̃·Ŵ‖² / samples over the rows the fit should count (kept rows with the mask,
            // every row without), r = Relu(x), r̃ the MatMul's dequantized input as ONNX Runtime computes it.
            var inputs = new[] { new InputSpec("x", ElementType.Float, [-1, -1, K]), new InputSpec(maskName, ElementType.Int64, [-1, -1]) };
            var feeds = Directory.GetFiles(calib).Order(StringComparer.Ordinal).Select(f => NamedInputs.Read(f, inputs)).ToList();
            double Objective(ModelProto q)
            {
                var g = new OnnxGraph(q.Clone());
                var matmul = g.Graph.Node.Single(n => n.Name == "dense");
                var dq = g.Producer(matmul.Input[1])!;
                var codes = TensorData.ToFloats(g.Initializer(dq.Input[0])!);
                var scales = g.InitializerFloats(dq.Input[1]);
                g.AddOutput(matmul.Input[0]);
                using var session = OrtRunner.FromModel(g.Model, new RunnerOptions { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL });
                double e = 0;
                foreach (var feed in feeds)
                {
                    var xq = session.Run(feed, [matmul.Input[0]])[matmul.Input[0]].Data;
                    var x = feed["x"].Data;
                    var mask = feed[maskName].Data;
                    for (int s = 0; s < Sequence; s++)
                    {
                        if (byMask && mask[s] == 0) continue;
                        for (int c = 0; c < N; c++)
                        {
                            double a = 0, b = 0;
                            for (int j = 0; j < K; j++)
                            {
                                a += Math.Max(0, x[s * K + j]) * (double)w[j * N + c];
                                b += xq[s * K + j] * (double)(codes[j * N + c] * scales[scales.Length == 1 ? 0 : c]);
                            }
                            e += (a - b) * (a - b);
                        }
                    }
                }
                return e / feeds.Count;
            }
            double before = Objective(nearest), after = Objective(learned);
            Assert.Equal(before, layer["nearest_error"]!.GetValue<double>(), before * 1e-3);
            Assert.Equal(after, layer["error"]!.GetValue<double>(), Math.Max(after, 1e-9) * 1e-3);
            Assert.True(after < before, $"{maskName}: {after} vs nearest {before}");
            if (byMask) Assert.True(kept.Count < Files * Sequence);
        }
    }
}
