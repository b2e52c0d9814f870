using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Rewrite;
using PtqTool.Tests.Cli;
using PtqTool.Tests.Distill;

namespace PtqTool.Tests.Rewrite;

public class SmoothQuantTests
{
    private const int K = 8;

    /// <summary>
    /// A post-LN block: x [N, 3, 8] → LayerNorm with γ that makes channel 2 an outlier → MatMul W1 and MatMul W2, and the
    /// LayerNorm output added to x (the residual reader smoothing must restore).
    /// </summary>
    private static ModelProto Block()
    {
        var m = new TinyModels([2, 3, K], seed: 7);
        string mean = m.Op("ReduceMean", ["x"], NodeAttributes.Ints("axes", [-1]));
        string d = m.Op("Sub", ["x", mean]);
        string v = m.Op("ReduceMean", [m.Op("Pow", [d, m.ConstValues([], [2])])], NodeAttributes.Ints("axes", [-1]));
        string y = m.Op("Div", [d, m.Op("Sqrt", [m.Op("Add", [v, m.ConstValues([], [1e-5f])])])]);
        float[] gamma = Enumerable.Range(0, K).Select(j => j == 2 ? 30f : 0.5f + 0.1f * j).ToArray();
        string ln = m.Op("Add", [m.Op("Mul", [y, m.ConstValues([K], gamma)]), m.ConstValues([K], Enumerable.Range(0, K).Select(j => 0.05f * j).ToArray())]);
        string a = m.Op("MatMul", [ln, m.Weight(K, 6)]);
        string b = m.Op("MatMul", [ln, m.Weight(K, 6)]);
        string residual = m.Op("Add", [ln, "x"]);
        string joined = m.Op("Add", [m.Op("Add", [a, b]), m.Op("MatMul", [residual, m.Weight(K, 6)])]);
        return m.Finish(joined);
    }

    private static FloatTensor Input(int seed, int n = 2)
    {
        var rng = new Random(seed);
        return new FloatTensor(Enumerable.Range(0, n * 3 * K).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray(), [n, 3, K]);
    }

    [Fact]
    public void Smoothing_leaves_the_float_model_function_unchanged_and_flattens_the_channel_maxima()
    {
        var model = Block();
        var graph = new OnnxGraph(model.Clone());
        var site = Assert.Single(SmoothQuant.Sites(graph));
        Assert.Equal(2, site.Weights.Count);
        Assert.Single(site.Others);
        var x = Input(1);
        string output = model.Graph.Output[0].Name;
        float[] before, channelMax = new float[K], smoothedMax = new float[K];
        using (var r = OrtRunner.FromModel(OutputGroups.Augment(model, [site.Tensor])))
        {
            var o = r.Run(x, [output, site.Tensor]);
            before = o[output].Data;
            for (int i = 0; i < o[site.Tensor].Data.Length; i++) channelMax[i % K] = Math.Max(channelMax[i % K], Math.Abs(o[site.Tensor].Data[i]));
        }
        var s = SmoothQuant.Factors(channelMax, site.Weights.Select(w => SmoothQuant.RowMax(graph.Initializer(w)!)).ToList(), 0.5);
        SmoothQuant.Apply(graph, site, s);
        using (var r = OrtRunner.FromModel(OutputGroups.Augment(graph.Model, [site.Tensor])))
        {
            var o = r.Run(x, [output, site.Tensor]);
            for (int i = 0; i < before.Length; i++) Assert.Equal(before[i], o[output].Data[i], 1e-4f * Math.Max(1, Math.Abs(before[i])));
            for (int i = 0; i < o[site.Tensor].Data.Length; i++) smoothedMax[i % K] = Math.Max(smoothedMax[i % K], Math.Abs(o[site.Tensor].Data[i]));
        }
        Assert.True(smoothedMax.Max() / smoothedMax.Min() < channelMax.Max() / channelMax.Min() / 2,
            $"channel max spread {channelMax.Max() / channelMax.Min():G3} -> {smoothedMax.Max() / smoothedMax.Min():G3}");
    }

    [Fact]
    public void Factors_follow_the_papers_formula()
    {
        float[] a = [4, 0.25f, 0, 9];
        var w = new List<float[]> { new float[] { 1, 4, 2, 0 }, new float[] { 0.5f, 1, 8, 0 } };
        var s = SmoothQuant.Factors(a, w, 0.5);
        Assert.Equal(Math.Sqrt(4) / Math.Sqrt(1), s[0], 5);
        Assert.Equal(Math.Sqrt(0.25) / Math.Sqrt(4), s[1], 5);
        Assert.Equal(1f, s[2]);
        Assert.Equal(1f, s[3]);
        s = SmoothQuant.Factors(a, w, 0.75);
        Assert.Equal(Math.Pow(4, 0.75) / Math.Pow(1, 0.25), s[0], 5);
    }

    [Fact]
    public void Quantize_with_smoothquant_reports_what_it_smoothed()
    {
        string dir = Repo.TempDir(), path = Path.Combine(dir, "block.onnx"), calib = Path.Combine(dir, "calib");
        OnnxModelFile.Save(Block(), path);
        Directory.CreateDirectory(calib);
        File.WriteAllBytes(Path.Combine(calib, "x.npy"), NpyReader.Write(Input(3, 32).Data, [32, 3, K]));
        var (_, report, _) = CliRunner.Quantize(dir, "q", path, "--calib", calib, "--batch", "2", "--smoothquant", "0.5");
        var sq = report["rewrite"]!["smoothquant"]!;
        Assert.Equal(1, sq["layernorms"]!.GetValue<int>());
        Assert.Equal(32, sq["samples"]!.GetValue<int>());
        Assert.True(sq["largest_factor"]!.GetValue<double>() > 1);
    }
}
