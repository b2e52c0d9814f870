using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Pipeline;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Data;

namespace PtqTool.Tests.Pipeline;

/// <summary>
/// `--rounding-check` (rise, the default with learned rounding, and double): a layer gets its nearest codes back where its
/// learned ones raise the model output KL on held-out calibration samples, every loss recomputed from ONNX Runtime's outputs.
/// </summary>
public class RoundingCheckTests
{
    private const int Fitted = 40, HeldOut = 32;
    private static readonly RunnerOptions Exact = new() { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL };

    /// <summary>
    /// Calibration samples of <see cref="TwoInputModel"/> whose features are one value of alternating sign on the samples
    /// the rounding fits on and independent on the held-out ones: AdaRound may then cancel the rounding errors of W1's
    /// rows against each other, which on the held-out samples adds them up instead.
    /// </summary>
    private static (string Calib, List<ModelFeed> HeldOut) Samples(string dir)
    {
        Directory.CreateDirectory(dir);
        var names = Enumerable.Range(0, Fitted + HeldOut).Select(i => $"s{i:D4}.npz").ToList();
        var fitted = Subset.Spread(names, Fitted).ToHashSet();   // the files --rounding-samples 40 takes
        var rng = new Random(8);
        var held = new List<ModelFeed>();
        foreach (var name in names)
        {
            int s = 5 + rng.Next(3);
            var (x, ids, mask) = TwoInputModel.Sample(rng, 1, s);
            if (fitted.Contains(name))
                for (int i = 1; i < TwoInputModel.Features; i++) x[i] = i % 2 == 0 ? x[0] : -x[0];
            string path = Path.Combine(dir, name);
            File.WriteAllBytes(path, TwoInputModel.Npz(x, ids, mask, 1, s));
            if (!fitted.Contains(name)) held.Add(NamedInputs.Read(path, TwoInputModel.Inputs));
        }
        return (dir, held);
    }

    /// <summary>A temporary folder with <see cref="TwoInputModel"/> saved in it and <see cref="Samples"/> written beside it.</summary>
    private static (string Dir, string Model, string Calib, List<ModelFeed> HeldOut) Setup()
    {
        string dir = Repo.TempDir();
        string model = Path.Combine(dir, "two.onnx");
        OnnxModelFile.Save(TwoInputModel.Build(), model);
        var (calib, held) = Samples(Path.Combine(dir, "calib"));
        return (dir, model, calib, held);
    }

    /// <summary>Mean over the samples of KL(softmax(y) ‖ softmax(ỹ)), y from the FP32 model and ỹ from the quantized one, both run by ONNX Runtime.</summary>
    private static double Kl(ModelProto fp32, ModelProto quantized, IReadOnlyList<ModelFeed> samples)
    {
        using var a = OrtRunner.FromModel(fp32, Exact);
        using var b = OrtRunner.FromModel(quantized, Exact);
        double sum = 0;
        int rows = 0;
        foreach (var s in samples)
        {
            var p = a.Run(s, ["y"])["y"].Data;
            var q = b.Run(s, ["y"])["y"].Data;
            for (int r = 0; r < p.Length / TwoInputModel.Outputs; r++, rows++)
            {
                var pr = Softmax(p.AsSpan(r * TwoInputModel.Outputs, TwoInputModel.Outputs));
                var qr = Softmax(q.AsSpan(r * TwoInputModel.Outputs, TwoInputModel.Outputs));
                for (int c = 0; c < pr.Length; c++) sum += pr[c] * Math.Log(pr[c] / qr[c]);
            }
        }
        return sum / rows;
    }

    private static double[] Softmax(ReadOnlySpan<float> row)
    {
        double max = double.MinValue;
        foreach (float v in row) max = Math.Max(max, v);
        var e = new double[row.Length];
        for (int i = 0; i < row.Length; i++) e[i] = Math.Exp(row[i] - max);
        double sum = e.Sum();
        return e.Select(v => v / sum).ToArray();
    }

    [Fact]
    public void A_rise_counts_when_it_exceeds_two_standard_errors_of_the_paired_differences()
    {
        var before = Enumerable.Range(0, 32).Select(i => 0.01 + 0.001 * (i % 5)).ToArray();
        // The same small rise on every sample: no spread, so any rise counts; a fall never does.
        Assert.True(PtqTool.Pipeline.OutputLossCheck.Rises(before.Select(v => v + 1e-4).ToArray(), before));
        Assert.False(PtqTool.Pipeline.OutputLossCheck.Rises(before.Select(v => v - 1e-4).ToArray(), before));
        // One sample up by 1: the rise is 1 and d = (1, 0, …, 0) has sd √((1 − 1/32)²/31 + 31/32²/31) = √(1/32), so the
        // standard error √32·sd is exactly 1: the rise is within two of them.
        var spike = (double[])before.Clone();
        spike[7] += 1;
        Assert.False(PtqTool.Pipeline.OutputLossCheck.Rises(spike, before));
        // Half the samples up by 1 and half by 0.5: mean 0.75, sd ≈ 0.254, standard error ≈ 1.44 against a rise of 24.
        var broad = before.Select((v, i) => v + (i % 2 == 0 ? 1 : 0.5)).ToArray();
        Assert.True(PtqTool.Pipeline.OutputLossCheck.Rises(broad, before));
        // A layer is reverted on its own only when its loss also reaches twice the loss so far.
        Assert.False(PtqTool.Pipeline.OutputLossCheck.Breaks(broad, before.Select(v => v + 0.5).ToArray()));
        Assert.True(PtqTool.Pipeline.OutputLossCheck.Breaks(before.Select(v => 2 * v + 1e-4).ToArray(), before));
    }

    [Fact]
    public void Limit_bounds_the_rounding_samples_and_leaves_none_to_hold_out()
    {
        var (dir, model, calib, _) = Setup();
        var (_, report, _) = CliRunner.Quantize(dir, "limited", model, "--calib", calib, "--limit", "24", "--batch", "8", "--weight-bits", "4",
            "--refine", "off", "--smoothquant", "off", "--rounding", "adaround", "--rounding-iterations", "50");
        Assert.Equal(24, report["rounding"]!["samples"]!.GetValue<int>());
        var check = report["rounding"]!["check"]!;
        Assert.Equal("fitted", check["compared_on"]!.GetValue<string>());
        Assert.Equal(24, check["samples"]!.GetValue<int>());
    }

    [Fact]
    public void Learned_codes_that_leave_the_model_worse_than_nearest_on_held_out_samples_all_go_back()
    {
        var (dir, model, calib, held) = Setup();
        string[] common = [model, "--calib", calib, "--batch", "8", "--weight-bits", "4", "--refine", "off", "--smoothquant", "off", "--rounding-samples", $"{Fitted}"];
        var (nearest, _, _) = CliRunner.Quantize(dir, "nearest", common);
        var (unchecked_, offReport, _) = CliRunner.Quantize(dir, "off", [.. common, "--rounding", "adaround", "--rounding-check", "off"]);
        var (checkedModel, report, _) = CliRunner.Quantize(dir, "double", [.. common, "--rounding", "adaround", "--rounding-check", "double"]);
        var fp32 = OnnxModelFile.Load(model);

        Assert.Null(offReport["rounding"]!["check"]);
        var check = report["rounding"]!["check"]!;
        Assert.Equal("kl", check["loss"]!.GetValue<string>());
        Assert.Equal("held_out", check["compared_on"]!.GetValue<string>());
        Assert.Equal(HeldOut, check["samples"]!.GetValue<int>());
        double nearestLoss = Kl(fp32, nearest, held), finalLoss = Kl(fp32, checkedModel, held), learnedLoss = Kl(fp32, unchecked_, held);
        Assert.Equal(nearestLoss, check["nearest_loss"]!.GetValue<double>(), nearestLoss * 1e-4);
        Assert.Equal(finalLoss, check["final_loss"]!.GetValue<double>(), finalLoss * 1e-4);

        // Learned where the features are one value, the rounding does worse than nearest on independent features: W1
        // raises the held-out loss (by less than the factor that reverts a layer on its own) and W2 does not bring it
        // back, so the checked model ends above nearest rounding's and every layer goes back to nearest codes.
        Assert.True(learnedLoss > nearestLoss, $"every layer learned: {learnedLoss:G4} vs nearest {nearestLoss:G4}");
        double current = nearestLoss;
        var layers = report["rounding"]!["layers"]!.AsArray();
        Assert.Equal(["W1", "W2"], layers.Select(l => l!["weight"]!.GetValue<string>()));
        foreach (var layer in layers)
        {
            // Replayed in graph order: a layer at least doubling the loss so far is reverted on its own; any other
            // learned layer's loss becomes the loss so far.
            if (layer!["check_loss"] is { } loss && loss.GetValue<double>() < OutputLossCheck.BreakFactor * current) current = loss.GetValue<double>();
        }
        Assert.Equal(current, check["checked_loss"]!.GetValue<double>(), current * 1e-4);
        Assert.True(current > nearestLoss, $"checked {current:G4} vs nearest {nearestLoss:G4}");
        Assert.Equal("nearest", check["kept"]!.GetValue<string>());
        Assert.Equal(nearestLoss, finalLoss, nearestLoss * 1e-6);
        Assert.True(finalLoss < learnedLoss);
        Assert.All(layers, l => Assert.Equal(l!["check_loss"] is not null, l["reverted"]!.GetValue<bool>()));
        Assert.Equal(2, check["reverted"]!.GetValue<int>());
        foreach (var codes in new[] { "W1_quantized", "W2_quantized" })
            Assert.Equal(new OnnxGraph(nearest).Initializer(codes)!.ToByteArray(), new OnnxGraph(checkedModel).Initializer(codes)!.ToByteArray());
        ActivationQdqCheck.Exact(checkedModel, held[0]);

        // rise (the default) reverts a layer at any rise beyond chance: a reverted layer's loss is above the loss so far
        // and its codes are nearest's, and the model ends at or below nearest rounding's loss.
        var (strictModel, strictReport, _) = CliRunner.Quantize(dir, "rise", [.. common, "--rounding", "adaround"]);
        Assert.Equal("adaround (1000 iterations per layer, fit to fp32 outputs, checked per layer on the model output (rise))",
            strictModel.MetadataProps.First(p => p.Key == "ptq.rounding").Value);
        var strict = strictReport["rounding"]!["check"]!;
        double strictLoss = Kl(fp32, strictModel, held);
        Assert.Equal(strictLoss, strict["final_loss"]!.GetValue<double>(), strictLoss * 1e-4);
        Assert.True(strictLoss <= nearestLoss * (1 + 1e-6), $"strict {strictLoss:G4} vs nearest {nearestLoss:G4}");
        double sofar = nearestLoss;
        foreach (var layer in strictReport["rounding"]!["layers"]!.AsArray())
        {
            if (layer!["check_loss"] is not { } loss) continue;
            string codes = layer["weight"]!.GetValue<string>() + "_quantized";
            if (!layer["reverted"]!.GetValue<bool>()) { sofar = loss.GetValue<double>(); continue; }
            Assert.True(loss.GetValue<double>() > sofar || strict["kept"]!.GetValue<string>() == "nearest");
            Assert.Equal(new OnnxGraph(nearest).Initializer(codes)!.ToByteArray(), new OnnxGraph(strictModel).Initializer(codes)!.ToByteArray());
        }
    }
}
