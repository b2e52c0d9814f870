using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Data;

public class MultiInputTests
{
    private static readonly InputSpec[] Inputs = TwoInputModel.Inputs;

    private static string SaveModel(string dir)
    {
        string model = Path.Combine(dir, "two.onnx");
        OnnxModelFile.Save(TwoInputModel.Build(), model);
        return model;
    }

    [Fact]
    public void Two_input_model_quantizes_end_to_end_and_every_activation_follows_exact_qdq_semantics()
    {
        string dir = Repo.TempDir();
        string model = SaveModel(dir);
        string calib = TwoInputModel.WriteSamples(Path.Combine(dir, "calib"), 40, [5, 7], seed: 1);
        var (quantized, report, _) = CliRunner.Quantize(dir, "q", model, "--calib", calib, "--batch", "8");
        Assert.Equal(40, report["calibration"]!["samples"]!.GetValue<int>());
        var graph = new OnnxGraph(quantized);
        var quantizers = ActivationQdqCheck.Quantizers(graph);
        Assert.NotEmpty(quantizers);
        // Integer inputs and the mask path are never quantized; the float input and the MatMul path are.
        Assert.DoesNotContain(quantizers, q => q.Input[0] is "ids" or "mask" or "m" or "m3");
        Assert.Contains(quantizers, q => q.Input[0] == "x");
        Assert.Contains(graph.Graph.Node, n => n.OpType == "Mul" && n.Name == "masked" && graph.Producer(n.Input[1])?.OpType != "DequantizeLinear");
        // One calibration file, fed by name through ONNX Runtime with graph optimizations off (the QDQ semantics).
        ActivationQdqCheck.Exact(quantized, NamedInputs.Read(Directory.GetFiles(calib).Order().First(), Inputs));
    }

    [Fact]
    public void Folders_of_tensor_protos_give_the_same_model_as_npz_archives()
    {
        string dir = Repo.TempDir();
        string model = SaveModel(dir);
        string npz = TwoInputModel.WriteSamples(Path.Combine(dir, "npz"), 24, [6, 3], seed: 5);
        string pb = Path.Combine(dir, "pb");
        foreach (var file in Directory.GetFiles(npz).Order())
        {
            // ONNX's test_data_set layout: one folder per sample, one TensorProto per input (named inside).
            string sample = Path.Combine(pb, Path.GetFileNameWithoutExtension(file));
            Directory.CreateDirectory(sample);
            int i = 0;
            foreach (var (name, array) in NpzReader.Read(file).OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                var shape = array.Shape;
                var t = array.Kind == "i8"
                    ? TensorData.FromInt64(name, shape, array.Data.Select(v => (long)v).ToArray())
                    : TensorData.FromFloats(name, shape, array.Data);
                File.WriteAllBytes(Path.Combine(sample, $"input_{i++}.pb"), t.ToByteArray());
            }
        }
        var fromNpz = CliRunner.Quantize(dir, "from_npz", model, "--calib", npz, "--batch", "4");
        var fromPb = CliRunner.Quantize(dir, "from_pb", model, "--calib", pb, "--batch", "4");
        Assert.Equal(24, fromPb.Report["calibration"]!["samples"]!.GetValue<int>());
        Assert.Equal(fromNpz.Bytes, fromPb.Bytes);
    }

    [Fact]
    public void Samples_of_different_sequence_lengths_are_batched_with_their_equals_never_padded()
    {
        string dir = TwoInputModel.WriteSamples(Path.Combine(Repo.TempDir(), "s"), 11, [5, 7, 5], seed: 2);
        var files = SampleFolder.List(dir, namedInputs: true);
        var batches = new BatchReader(files, Inputs, batch: 4).Read().ToList();
        Assert.Equal(11, batches.Sum(b => b.Input.Batch));
        Assert.Equal(files.Select(f => f.Path).Order(), batches.SelectMany(b => b.Files).Order());
        foreach (var b in batches)
        {
            Assert.InRange(b.Input.Batch, 1, 4);
            int length = b.Input["ids"].Shape[1];
            Assert.Equal(length, b.Input["mask"].Shape[1]);
            // Each row is its own file's data, unpadded.
            for (int i = 0; i < b.Input.Batch; i++)
            {
                var own = NpzReader.Read(b.Files[i]);
                Assert.Equal(own["ids"].Data, b.Input["ids"].Data.AsSpan(i * length, length).ToArray());
                Assert.Equal(own["x"].Data, b.Input["x"].Data.AsSpan(i * TwoInputModel.Features, TwoInputModel.Features).ToArray());
            }
        }
        // 7 samples of length 5 make one full batch and one of 3; 4 of length 7 one full batch.
        Assert.Equal([3, 4, 4], batches.Select(b => b.Input.Batch).Order());
    }

    public static IEnumerable<object[]> BadSamples()
    {
        var x = new float[TwoInputModel.Features];
        long[] ids = [1, 2, 3], mask = [1, 1, 0];
        byte[] X(int[] shape) => NpyReader.Write(new float[shape.Aggregate(1, (a, b) => a * b)], shape);
        yield return ["lacks_mask", NpzWriter.Write([("x", NpyReader.Write(x, [1, 8])), ("ids", NpyReader.Write(ids, [1, 3]))]), "lacks input 'mask'"];
        yield return ["extra_key", NpzWriter.Write([("x", X([1, 8])), ("ids", NpyReader.Write(ids, [1, 3])), ("mask", NpyReader.Write(mask, [1, 3])), ("lengths", NpyReader.Write(ids, [3]))]), "holds 'lengths', which is not an input"];
        yield return ["float_ids", NpzWriter.Write([("x", X([1, 8])), ("ids", X([1, 3])), ("mask", NpyReader.Write(mask, [1, 3]))]), "input 'ids' is int64 in the model, the file holds float32"];
        yield return ["int_x", NpzWriter.Write([("x", NpyReader.Write(new long[8], [1, 8])), ("ids", NpyReader.Write(ids, [1, 3])), ("mask", NpyReader.Write(mask, [1, 3]))]), "input 'x' is float in the model, the file holds int64"];
        yield return ["rank", NpzWriter.Write([("x", X([1, 8])), ("ids", NpyReader.Write(ids, [1, 1, 3])), ("mask", NpyReader.Write(mask, [1, 3]))]), "input 'ids' has shape [1, 1, 3]"];
        yield return ["fixed_dim", NpzWriter.Write([("x", X([1, 9])), ("ids", NpyReader.Write(ids, [1, 3])), ("mask", NpyReader.Write(mask, [1, 3]))]), "dimension 1 must be 8"];
        yield return ["batches", NpzWriter.Write([("x", X([2, 8])), ("ids", NpyReader.Write(ids, [1, 3])), ("mask", NpyReader.Write(mask, [1, 3]))]), "holds 1 sample(s), input 'x' 2"];
        yield return ["huge_id", NpzWriter.Write([("x", X([1, 8])), ("ids", NpyReader.Write(new long[] { 1, 1L << 30, 2 }, [1, 3])), ("mask", NpyReader.Write(mask, [1, 3]))]), "beyond ±2^24"];
        yield return ["not_zip", "this is not a zip archive at all"u8.ToArray(), "not a valid .npz"];
        var good = NpzWriter.Write([("x", X([1, 8])), ("ids", NpyReader.Write(ids, [1, 3])), ("mask", NpyReader.Write(mask, [1, 3]))]);
        yield return ["truncated", good[..(good.Length * 2 / 3)], ".npz"];
    }

    [Theory]
    [MemberData(nameof(BadSamples))]
    public void A_bad_sample_is_refused_naming_the_file_and_the_problem(string name, byte[] bytes, string expected)
    {
        string dir = Path.Combine(Repo.TempDir(), "bad");
        Directory.CreateDirectory(dir);
        string file = Path.Combine(dir, name + ".npz");
        File.WriteAllBytes(file, bytes);
        var e = Assert.Throws<PtqException>(() => new BatchReader([new SampleFile(file)], Inputs, 4).Read().ToList());
        Assert.Contains(file, e.Message);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Cli_refuses_a_bad_sample_with_one_line_a_nonzero_exit_and_no_output()
    {
        string dir = Repo.TempDir();
        string model = SaveModel(dir);
        string calib = TwoInputModel.WriteSamples(Path.Combine(dir, "calib"), 4, [5], seed: 1);
        File.WriteAllBytes(Path.Combine(calib, "s0002.npz"), NpzWriter.Write([("x", NpyReader.Write(new float[8], [1, 8])), ("ids", NpyReader.Write(new long[5], [1, 5]))]));
        string output = Path.Combine(dir, "q.onnx");
        var (code, _, err) = CliRunner.Run("quantize", model, "--calib", calib, "--out", output, "--quiet");
        Assert.NotEqual(0, code);
        var error = Assert.Single(err.Trim().Split('\n'), l => l.StartsWith("ptq:", StringComparison.Ordinal));
        Assert.Contains("s0002.npz: lacks input 'mask'", error);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void A_model_fed_named_samples_gets_no_image_preprocessing_sidecar()
    {
        // The sidecar records image preprocessing for ptq eval; samples keyed by input name have none to record.
        string dir = Repo.TempDir();
        string calib = TwoInputModel.WriteSamples(Path.Combine(dir, "calib"), 8, [5], seed: 4);
        string output = Path.Combine(dir, "q.onnx");
        var (code, _, err) = CliRunner.Run("quantize", SaveModel(dir), "--calib", calib, "--out", output, "--quiet");
        Assert.True(code == 0, err);
        Assert.True(File.Exists(output));
        Assert.False(File.Exists(Path.Combine(dir, "q.json")));
    }

    [Fact]
    public void Images_are_refused_for_a_model_with_several_inputs()
    {
        string dir = Repo.TempDir();
        var (code, _, err) = CliRunner.Run("quantize", SaveModel(dir), "--calib", Repo.CalibDir, "--out", Path.Combine(dir, "q.onnx"), "--quiet");
        Assert.NotEqual(0, code);
        Assert.Contains("no .npz samples", err);
    }

    [Fact]
    public void Synthetic_data_is_refused_for_a_model_with_several_inputs()
    {
        string dir = Repo.TempDir();
        var (code, _, err) = CliRunner.Run("quantize", SaveModel(dir), "--synthetic", "gaussian", "--out", Path.Combine(dir, "q.onnx"), "--quiet");
        Assert.Equal(2, code);
        Assert.Contains("--synthetic:", err);
    }

    [Fact]
    public void Calibrate_keeps_statistics_of_sequences_of_changing_length()
    {
        // ids [N, S] → Gather(E) [N, S, 8] → MatMul(W) [N, S, 4]: the MatMul input has no channel axis at 1 (S varies),
        // so `ptq calibrate` (which keeps channel means for a later --bias-correction) must not take one there.
        var model = new PtqTool.Onnx.Proto.ModelProto { IrVersion = 8, Graph = new PtqTool.Onnx.Proto.GraphProto { Name = "seq" } };
        model.OpsetImport.Add(new PtqTool.Onnx.Proto.OperatorSetIdProto { Domain = "", Version = 13 });
        var g = new OnnxGraph(model);
        var full = TwoInputModel.Build();
        g.Graph.Input.Add(full.Graph.Input.Single(i => i.Name == "ids").Clone());
        g.AddInitializer(TensorData.FromFloats("E", [TwoInputModel.Vocabulary, 8], Enumerable.Range(0, TwoInputModel.Vocabulary * 8).Select(i => (i % 11 - 5) / 4f).ToArray()));
        g.AddInitializer(TensorData.FromFloats("W", [8, 4], Enumerable.Range(0, 32).Select(i => (i % 7 - 3) / 3f).ToArray()));
        g.AddNode(NodeAttributes.Node("Gather", "embed", ["E", "ids"], ["e"]));
        g.AddNode(NodeAttributes.Node("MatMul", "dense", ["e", "W"], ["y"]));
        g.AddOutput("y");
        string dir = Repo.TempDir(), path = Path.Combine(dir, "seq.onnx"), calib = Path.Combine(dir, "calib");
        OnnxModelFile.Save(model, path);
        Directory.CreateDirectory(calib);
        var rng = new Random(8);
        for (int i = 0; i < 6; i++)
        {
            int length = 3 + i % 3;
            File.WriteAllBytes(Path.Combine(calib, $"s{i}.npz"), NpzWriter.Write([("ids", NpyReader.Write(Enumerable.Range(0, length).Select(_ => (long)rng.Next(TwoInputModel.Vocabulary)).ToArray(), [1, length]))]));
        }
        var (code, _, err) = CliRunner.Run("calibrate", path, "--calib", calib, "--stats", Path.Combine(dir, "s.json"), "--batch", "2", "--quiet");
        Assert.True(code == 0, err);
        var stats = PtqTool.Calibration.ActivationStatistics.Load(Path.Combine(dir, "s.json"));
        Assert.Equal(6, stats.Samples);
        Assert.Contains("e", stats.Tensors.Keys);
    }
}
