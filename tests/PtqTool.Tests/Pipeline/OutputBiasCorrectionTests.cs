using Microsoft.ML.OnnxRuntime;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Distill;

namespace PtqTool.Tests.Pipeline;

public class OutputBiasCorrectionTests
{
    /// <summary>Conv(3→8, 3×3, pad 1) → Conv(8→6, 1×1) → Relu → Conv(6→4, 1×1): a chain of three depths.</summary>
    private static (ModelProto Model, string First) Chain()
    {
        var m = new TinyModels([2, 3, 10, 10], seed: 21);
        string first = m.Conv("x", 3, 8, 3, pads: [1, 1, 1, 1]);
        string second = m.Op("Relu", [m.Conv(first, 8, 6, 1)]);
        return (m.Finish(m.Conv(second, 6, 4, 1)), first);
    }

    /// <summary>Nearly constant inputs (a page's background with a little texture): rounding them errs the same way everywhere.</summary>
    private static List<FloatTensor> WriteSamples(string dir)
    {
        Directory.CreateDirectory(dir);
        var rng = new Random(5);
        var samples = new List<FloatTensor>();
        for (int i = 0; i < 12; i++)
        {
            var data = Enumerable.Range(0, 600).Select(j => (float)(0.3 + 0.7 * (j % 100 / 100.0) + 0.02 * (rng.NextDouble() - 0.5))).ToArray();
            File.WriteAllBytes(Path.Combine(dir, $"s{i:D2}.npy"), PtqTool.Data.NpyReader.Write(data, [2, 3, 10, 10]));
            samples.Add(new FloatTensor(data, [2, 3, 10, 10]));
        }
        return samples;
    }

    /// <summary>A temporary folder holding the chain as chain.onnx and its samples in calib/.</summary>
    private static (string Dir, string Path, ModelProto Model, string First, List<FloatTensor> Samples) Setup()
    {
        string dir = Repo.TempDir();
        var (model, first) = Chain();
        string path = Path.Combine(dir, "chain.onnx");
        OnnxModelFile.Save(model, path);
        return (dir, path, model, first, WriteSamples(Path.Combine(dir, "calib")));
    }

    private static Dictionary<string, FloatTensor> Run(ModelProto model, FloatTensor x, params string[] outputs)
    {
        var g = new OnnxGraph(model.Clone());
        foreach (var o in outputs) if (!g.IsGraphOutput(o)) g.AddOutput(o);
        using var ort = OrtRunner.FromModel(g.Model, new RunnerOptions { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL });
        return ort.Run(x, outputs).ToDictionary(kv => kv.Key, kv => kv.Value);
    }

    [Fact]
    public void The_correction_lowers_the_output_loss_it_reports_and_leaves_the_first_convs_mean_error_within_half_a_bias_step()
    {
        var (dir, path, model, first, samples) = Setup();
        var (quantized, report, _) = CliRunner.Quantize(dir, "q", path, "--calib", Path.Combine(dir, "calib"), "--batch", "2", "--refine", "off", "--output-bias-correction", "on");
        var obc = report["output_bias_correction"]!;
        Assert.Equal(3, obc["layers"]!.GetValue<int>());
        Assert.Equal(3, obc["passes"]!.GetValue<int>());
        Assert.Equal(24, obc["samples"]!.GetValue<int>());
        Assert.True(obc["kept"]!.GetValue<bool>());
        double before = obc["loss_before"]!.GetValue<double>(), after = obc["loss_after"]!.GetValue<double>();
        Assert.True(after < before, $"{after} not below {before}");

        // Recomputed by ONNX Runtime on the saved files: the relative MSE of the output on the calibration samples, and
        // the first Conv's per-channel mean error against FP32.
        string output = model.Graph.Output[0].Name;
        double noise = 0, signal = 0;
        var error = new double[8];
        var qGraph = new OnnxGraph(quantized);
        var conv = quantized.Graph.Node.Single(n => n.OpType == "Conv" && n.Output[0] == first);
        var biasDq = qGraph.Producer(conv.Input[2])!;
        var biasScales = TensorData.ToFloats(qGraph.Initializer(biasDq.Input[1])!);
        foreach (var x in samples)
        {
            var f = Run(model, x, output, first);
            var q = Run(quantized, x, output, first);
            for (int i = 0; i < f[output].Data.Length; i++)
            {
                double e = f[output].Data[i] - q[output].Data[i];
                noise += e * e;
                signal += f[output].Data[i] * (double)f[output].Data[i];
            }
            for (int i = 0; i < f[first].Data.Length; i++) error[i / 100 % 8] += q[first].Data[i] - f[first].Data[i];
        }
        Assert.Equal(after, noise / signal, after * 1e-3);
        int count = samples.Count * 2 * 100;
        for (int c = 0; c < 8; c++)
            Assert.True(Math.Abs(error[c] / count) <= 0.5 * biasScales[c] * 1.01 + 1e-6, $"channel {c}: mean error {error[c] / count}, bias step {biasScales[c]}");
    }

    [Fact]
    public void Refined_scales_compete_with_each_tensors_own_and_the_lower_corrected_loss_wins()
    {
        // The bundled CNN: both candidates bias-corrected on the same 64 samples. A --refine off run (another process)
        // gives the unrefined candidate independently: its loss, and its graph where the refined scales were set aside.
        string dir = Repo.TempDir();
        string[] common = [Repo.Model("fmnist_cnn"), "--calib", Repo.CalibDir, "--limit", "64"];
        var (chosen, report, _) = CliRunner.Quantize(dir, "default", common);
        var (plain, plainReport, _) = CliRunner.Quantize(dir, "plain", [.. common, "--refine", "off"]);
        var obc = report["output_bias_correction"]!;
        double refined = obc["refined_loss"]!.GetValue<double>(), unrefined = obc["unrefined_loss"]!.GetValue<double>();
        var plainObc = plainReport["output_bias_correction"]!;
        double plainFinal = plainObc[plainObc["kept"]!.GetValue<bool>() ? "loss_after" : "loss_before"]!.GetValue<double>();
        Assert.Equal(plainFinal, unrefined, plainFinal * 1e-6);
        Assert.Null(plainObc["unrefined_loss"]);
        // All 64 calibration samples are the ones fitted on: nothing is left to hold out.
        Assert.Equal("fitted", obc["compared_on"]!.GetValue<string>());
        Assert.Null(obc["held_out_samples"]);
        bool kept = report["refinement"]!["kept"]!.GetValue<bool>();
        Assert.Equal(kept, refined <= unrefined);
        double final = obc[obc["kept"]!.GetValue<bool>() ? "loss_after" : "loss_before"]!.GetValue<double>();
        Assert.Equal(Math.Min(refined, unrefined), final, final * 1e-9);
        if (!kept) Assert.Equal(plain.Graph, chosen.Graph);
        else Assert.NotEqual(plain.Graph, chosen.Graph);
    }

    [Fact]
    public void With_calibration_left_over_the_candidates_are_compared_on_samples_neither_was_fitted_on()
    {
        // 96 calibration samples as .npy files (the bundled CNN's images, normalized as its preset does), 32 of them
        // for the refinement and the bias correction: files 0, 3, 6, … (every third). The comparison takes 32 of the
        // other 64: every other one of them. Their KL against FP32 is recomputed here, by ONNX Runtime on the saved models.
        string dir = Repo.TempDir(), calib = Path.Combine(dir, "calib");
        Directory.CreateDirectory(calib);
        var samples = new List<FloatTensor>();
        foreach (var png in Directory.GetFiles(Repo.CalibDir, "*.png").Order(StringComparer.Ordinal).Take(96))
        {
            using var image = SkiaSharp.SKBitmap.Decode(png);
            var data = new float[28 * 28];
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 28; x++) data[y * 28 + x] = (image.GetPixel(x, y).Red / 255f - 0.2860f) / 0.3530f;
            File.WriteAllBytes(Path.Combine(calib, $"s{samples.Count:D3}.npy"), PtqTool.Data.NpyReader.Write(data, [1, 1, 28, 28]));
            samples.Add(new FloatTensor(data, [1, 1, 28, 28]));
        }
        string[] common = [Repo.Model("fmnist_cnn"), "--calib", calib, "--refine-samples", "32"];
        var (chosen, report, _) = CliRunner.Quantize(dir, "default", common);
        var (plain, _, _) = CliRunner.Quantize(dir, "plain", [.. common, "--refine", "off"]);
        var obc = report["output_bias_correction"]!;
        Assert.Equal("held_out", obc["compared_on"]!.GetValue<string>());
        Assert.Equal(32, obc["held_out_samples"]!.GetValue<int>());
        double refined = obc["refined_held_out_loss"]!.GetValue<double>(), unrefined = obc["unrefined_held_out_loss"]!.GetValue<double>();
        bool kept = report["refinement"]!["kept"]!.GetValue<bool>();
        Assert.Equal(kept, refined <= unrefined);

        var heldOut = Enumerable.Range(0, 96).Where(i => i % 3 != 0).Where((_, j) => j % 2 == 0).Select(i => samples[i]).ToList();
        var fp32 = OnnxModelFile.Load(Repo.Model("fmnist_cnn"));
        string output = fp32.Graph.Output[0].Name;
        double Kl(ModelProto quantized)
        {
            double sum = 0;
            foreach (var x in heldOut)
            {
                var p = Softmax(Run(fp32, x, output)[output].Data);
                var q = Softmax(Run(quantized, x, output)[output].Data);
                sum += p.Zip(q).Sum(t => t.First > 0 ? t.First * (Math.Log(t.First) - Math.Log(t.Second)) : 0);
            }
            return sum / heldOut.Count;
        }
        Assert.Equal(unrefined, Kl(plain), unrefined * 1e-3 + 1e-9);
        Assert.Equal(Math.Min(refined, unrefined), Kl(chosen), Math.Min(refined, unrefined) * 1e-3 + 1e-9);
        if (!kept) Assert.Equal(plain.Graph, chosen.Graph);
    }

    private static double[] Softmax(float[] z)
    {
        double max = z.Max();
        var e = z.Select(v => Math.Exp(v - max)).ToArray();
        double total = e.Sum();
        return [.. e.Select(v => v / total)];
    }

    [Fact]
    public void On_by_default_only_bias_codes_change_and_off_leaves_the_biases_the_rewrite_made()
    {
        var (dir, path, _, _, _) = Setup();
        var (off, report, _) = CliRunner.Quantize(dir, "off", path, "--calib", Path.Combine(dir, "calib"), "--batch", "2", "--refine", "off", "--output-bias-correction", "off");
        Assert.Null(report["output_bias_correction"]);
        Assert.False(report["options"]!["output_bias_correction"]!.GetValue<bool>());
        var (on, onReport, _) = CliRunner.Quantize(dir, "on", path, "--calib", Path.Combine(dir, "calib"), "--batch", "2", "--refine", "off");
        Assert.True(onReport["options"]!["output_bias_correction"]!.GetValue<bool>());
        Assert.True(onReport["output_bias_correction"]!["kept"]!.GetValue<bool>());
        // Only int32 bias codes differ between the two models.
        var a = off.Graph.Initializer.ToDictionary(t => t.Name);
        var changed = on.Graph.Initializer.Where(t => !a[t.Name].Equals(t)).ToList();
        Assert.NotEmpty(changed);
        Assert.All(changed, t => Assert.Equal(ElementType.Int32, t.DataType));
    }
}
