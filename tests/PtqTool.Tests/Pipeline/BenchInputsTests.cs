using PtqTool.Onnx;
using PtqTool.Pipeline;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Data;

namespace PtqTool.Tests.Pipeline;

/// <summary>`ptq bench` on a model with several inputs: a float input and int64 token ids and mask of a symbolic sequence length.</summary>
public class BenchInputsTests
{
    private static string Model()
    {
        string path = Path.Combine(Repo.TempDir(), "two.onnx");
        OnnxModelFile.Save(TwoInputModel.Build(), path);
        return path;
    }

    [Fact]
    public void Every_input_gets_its_shape_and_values_a_text_encoder_accepts()
    {
        string path = Model();
        using var runner = OrtRunner.FromFile(path);
        var (feed, inputs) = BenchInputs.For(runner, new Lazy<OnnxGraph>(() => OnnxGraph.Load(path)), batch: 3, size: null, sequenceLength: 5, path);
        Assert.Equal(["x", "ids", "mask"], inputs.Select(i => i.Name));
        Assert.Equal([[3, TwoInputModel.Features], [3, 5], [3, 5]], inputs.Select(i => i.Shape));
        Assert.All(feed["x"].Data, v => Assert.InRange(v, -1f, 1f));
        Assert.All(feed["mask"].Data, v => Assert.Equal(1f, v));
        // Token ids stay inside the embedding table the ids index (16 rows), and are whole numbers.
        Assert.All(feed["ids"].Data, v => { Assert.InRange(v, 1f, TwoInputModel.Vocabulary - 1); Assert.Equal(MathF.Round(v), v); });
        Assert.True(feed["ids"].Data.Distinct().Count() > 1);
        // ONNX Runtime takes the feed as it is.
        Assert.Equal([3, TwoInputModel.Outputs], runner.Run(feed)["y"].Shape);
    }

    [Fact]
    public void A_symbolic_sequence_without_seq_len_is_refused_naming_the_input()
    {
        string path = Model();
        using var runner = OrtRunner.FromFile(path);
        var e = Assert.Throws<PtqException>(() => BenchInputs.For(runner, new Lazy<OnnxGraph>(() => OnnxGraph.Load(path)), 2, null, null, path));
        Assert.Contains("'ids'", e.Message);
        Assert.Contains("--seq-len", e.Message);
    }

    [Fact]
    public void Bench_times_a_multi_input_model_and_lists_its_inputs()
    {
        string path = Model();
        var (code, output, err) = CliRunner.Run("bench", path, path, "--batch", "2", "--seq-len", "7", "--runs", "3", "--threads", "1");
        Assert.True(code == 0, err);
        Assert.Contains("inputs x [2, 8] float, ids [2, 7] int64, mask [2, 7] int64", output);
        Assert.Equal(2, output.Split('\n').Count(l => l.Contains("median", StringComparison.Ordinal)));
        var (badCode, _, badErr) = CliRunner.Run("bench", path, "--seq-len", "0");
        Assert.NotEqual(0, badCode);
        Assert.Contains("--seq-len", badErr);
    }
}
