using System.Text.Json.Nodes;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Pipeline;

/// <summary>`ptq quantize --rounding brecq` end to end on the bundled ResNet (residual blocks learned jointly).</summary>
public class BlockReconstructionTests
{
    private static (ModelProto Model, JsonNode Report, byte[] Bytes) Quantize(string dir, string name, params string[] extra) =>
        CliRunner.Quantize(dir, name, [Repo.Model("fmnist_resnet"), "--weight-bits", "4", "--eval", Repo.EvalDir, "--eval-limit", "64", "--rounding-samples", "64", "--rounding-iterations", "60", "--output-bias-correction", "off", .. extra]);

    [Fact]
    public void Residual_blocks_are_learned_jointly_only_codes_change_by_one_step_and_no_block_gets_worse()
    {
        string dir = Repo.TempDir();
        var (nearest, _, _) = Quantize(dir, "nearest", "--calib", Repo.CalibDir, "--limit", "64");
        var (learned, report, _) = Quantize(dir, "brecq", "--calib", Repo.CalibDir, "--limit", "64", "--rounding", "brecq");
        var rounding = report["rounding"]!;
        Assert.Equal("brecq", rounding["method"]!.GetValue<string>());
        var layers = rounding["layers"]!.AsArray();
        var blocks = rounding["blocks"]!.AsArray();
        Assert.Equal(9, layers.Count);   // eight Conv and the Gemm
        // stem | block1 (2 Conv) | block2 (2 Conv + projection) | depthwise-separable block (2 Conv) | Gemm
        Assert.Equal([1, 2, 3, 2, 1], blocks.Select(b => b!["layers"]!.GetValue<int>()));
        Assert.All(blocks, b => Assert.Equal("brecq", b!["method"]!.GetValue<string>()));
        Assert.Equal("logits", blocks[^1]!["output"]!.GetValue<string>());
        // The model keeps the block codes or per-layer AdaRound's, whichever reproduces the FP32 output better.
        var check = rounding["output_check"]!;
        string kept = check["kept"]!.GetValue<string>();
        double brecqError = check["brecq_error"]!.GetValue<double>(), adaroundError = check["adaround_error"]!.GetValue<double>();
        Assert.True(kept == "brecq" ? brecqError <= adaroundError : adaroundError < brecqError, $"kept {kept}: {brecqError} (brecq) vs {adaroundError} (adaround)");
        Assert.All(layers, l => Assert.Equal(kept == "brecq", l!["block"] is not null));
        Assert.Equal(64 / 5, check["samples"]!.GetValue<int>());   // every fifth rounding sample, held out of the block fits
        foreach (var b in blocks)
        {
            double error = b!["error"]!.GetValue<double>();
            Assert.True(error <= b["nearest_error"]!.GetValue<double>() && error <= b["adaround_error"]!.GetValue<double>(),
                $"block {b["index"]}: {error} vs nearest {b["nearest_error"]}, per-layer {b["adaround_error"]}");
        }
        Assert.True(blocks.Sum(b => b!["error"]!.GetValue<double>()) < 0.8 * blocks.Sum(b => b!["nearest_error"]!.GetValue<double>()));

        long changed = LearnedCodes.AssertOnlyCodesMoveByOneStep(nearest, learned, layers.Select(l => l!["weight"]!.GetValue<string>()), 7);
        Assert.Equal(layers.Sum(l => l!["changed_codes"]!.GetValue<long>()), changed);
        Assert.True(changed > 0);
        Assert.Equal("brecq (60 iterations per block, fit to fp32 outputs)", new OnnxGraph(learned).Model.MetadataProps.First(p => p.Key == "ptq.rounding").Value);
    }

    [Fact]
    public void Every_fifth_sample_is_held_out_and_every_sample_lands_once_in_order()
    {
        // 3 batches of 4, then one of 2: samples numbered 0..13 by their value.
        var batches = new[] { 4, 4, 4, 2 }.Select((n, b) => (ModelFeed)new FloatTensor(Enumerable.Range(4 * b, n).SelectMany(i => new float[] { i, -i }).ToArray(), [n, 2])).ToList();
        var (fitFeeds, heldFeeds) = PtqTool.Pipeline.BlockReconstructionStep.HoldOut(batches, 5);
        var fit = fitFeeds.Select(f => f.Tensors[0]).ToList();
        var held = heldFeeds.Select(f => f.Tensors[0]).ToList();
        float[] Ids(List<FloatTensor> part) => part.SelectMany(t => Enumerable.Range(0, t.Batch).Select(r => t.Data[2 * r])).ToArray();
        Assert.Equal([4f, 9f], Ids(held));
        Assert.Equal(Enumerable.Range(0, 14).Where(i => i % 5 != 4).Select(i => (float)i), Ids(fit));
        Assert.All(fit.Concat(held), t => Assert.True(t.Batch <= 4 && t.Shape[1] == 2 && t.Data[1] == -t.Data[0]));
        Assert.Equal([4, 4, 4], fit.Select(t => t.Batch));
    }

    [Fact]
    public void Held_out_samples_of_two_inputs_keep_their_rows_together_and_shapes_of_different_length_apart()
    {
        // Seven samples of two named inputs, sequence lengths 3, 3 (one feed of two), then 5, 5, 5, 3, 3 (a feed each).
        // Sample i holds i in every element of both inputs, so a row that left its partner would show.
        int[] lengths = [3, 3, 5, 5, 5, 3, 3];
        ModelFeed Feed(int first, int count) => new(["a", "b"], [
            new FloatTensor(Enumerable.Range(first, count).SelectMany(i => Enumerable.Repeat((float)i, lengths[i])).ToArray(), [count, lengths[first]]),
            new FloatTensor(Enumerable.Range(first, count).SelectMany(i => Enumerable.Repeat((float)i, 2 * lengths[i])).ToArray(), [count, 2, lengths[first]])]);
        var batches = new List<ModelFeed> { Feed(0, 2) };
        for (int i = 2; i < lengths.Length; i++) batches.Add(Feed(i, 1));
        var (fit, held) = PtqTool.Pipeline.BlockReconstructionStep.HoldOut(batches, 3);
        foreach (var f in fit.Concat(held))
        {
            Assert.Equal(["a", "b"], f.Names);
            Assert.Equal(f.Tensors[0].Batch, f.Tensors[1].Batch);
            for (int r = 0; r < f.Batch; r++)
            {
                float id = f.Tensors[0].Data[r * f.Tensors[0].SampleSize];
                Assert.Equal(lengths[(int)id], f.Tensors[0].Shape[1]);
                Assert.All(f.Tensors[1].Slice(r, 1).Data, v => Assert.Equal(id, v));
                Assert.All(f.Tensors[0].Slice(r, 1).Data, v => Assert.Equal(id, v));
            }
        }
        float[] Ids(List<ModelFeed> part) => part.SelectMany(f => Enumerable.Range(0, f.Batch).Select(r => f.Tensors[0].Data[r * f.Tensors[0].SampleSize])).ToArray();
        Assert.Equal([2f, 5f], Ids(held));
        Assert.Equal([0f, 1f, 3f, 4f, 6f], Ids(fit));
        // Batches take the first feed's size (2) and end where the length changes.
        Assert.Equal([2, 2, 1], fit.Select(f => f.Batch));
        Assert.Equal([1, 1], held.Select(f => f.Batch));
    }

    [Fact]
    public void Data_free_block_reconstruction_gives_the_same_bytes_twice()
    {
        string dir = Repo.TempDir();
        string[] options = ["--synthetic", "gaussian", "--count", "32", "--seed", "2", "--rounding", "brecq"];
        var (_, _, first) = Quantize(dir, "one", options);
        var (_, _, second) = Quantize(dir, "two", options);
        Assert.Equal(first, second);
    }

    [Theory]
    [InlineData("--rounding-target", "quantized")]
    [InlineData("--multipoint", "0.05")]
    [InlineData("--bias-correction", null)]
    public void Options_it_does_not_combine_with_are_refused_naming_them(string option, string? value)
    {
        string dir = Repo.TempDir();
        string[] extra = value is null ? [option] : [option, value];
        var (code, _, err) = CliRunner.Run(["quantize", Repo.Model("fmnist_cnn"), "--calib", Repo.CalibDir, "--rounding", "brecq", .. extra, "--out", Path.Combine(dir, "x.onnx"), "--quiet"]);
        Assert.Equal(2, code);
        Assert.Contains(option, err);
        Assert.False(File.Exists(Path.Combine(dir, "x.onnx")));
    }
}
