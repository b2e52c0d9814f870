using Google.Protobuf;
using PtqTool.Onnx;

namespace PtqTool.Tests.Onnx;

public class RoundTripTests
{
    public static IEnumerable<object[]> Models() => Repo.BundledModels.Select(m => new object[] { m });

    [Theory]
    [MemberData(nameof(Models))]
    public void Parse_then_serialize_is_byte_identical_on_bundled_models(string name)
    {
        byte[] original = File.ReadAllBytes(Repo.Model(name));
        var model = OnnxModelFile.Parse(original, name);
        Assert.Equal(original, model.ToByteArray());
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Parse_then_serialize_is_byte_identical_on_models_written_by_onnx_runtime(string name)
    {
        string dir = Repo.TempDir();
        string optimized = Path.Combine(dir, "optimized.onnx");
        using (OrtRunner.FromFile(Repo.Model(name), new RunnerOptions { OptimizedModelPath = optimized })) { }
        byte[] written = File.ReadAllBytes(optimized);
        Assert.True(written.Length > 1000);
        var model = OnnxModelFile.Parse(written, optimized);
        Assert.Equal(written, model.ToByteArray());
    }

    [Fact]
    public void External_data_saves_loads_and_runs_with_the_same_outputs()
    {
        string dir = Repo.TempDir();
        var model = OnnxModelFile.Load(Repo.Model("fmnist_cnn"));
        string external = Path.Combine(dir, "external.onnx");
        OnnxModelFile.SaveWithExternalData(model, external, minBytes: 256);
        Assert.True(File.Exists(external + ".data"));
        Assert.True(new FileInfo(external).Length < 20_000, "weights should have moved out of the .onnx file");

        var loaded = OnnxModelFile.Load(external);
        Assert.True(OnnxModelFile.HasExternalData(loaded));
        var w = loaded.Graph.Initializer.First(t => t.Dims.Count == 4);
        Assert.Equal(TensorData.ToFloats(model.Graph.Initializer.First(t => t.Name == w.Name)), TensorData.ToFloats(w, dir));

        // Save again elsewhere (external data is rewritten beside the new file), then run both in ONNX Runtime.
        string copyDir = Repo.TempDir();
        string copy = Path.Combine(copyDir, "copy.onnx");
        OnnxModelFile.Save(loaded, copy, sourceDirectory: dir);
        var input = RandomInput(4, 1);
        using var a = OrtRunner.FromFile(Repo.Model("fmnist_cnn"));
        using var b = OrtRunner.FromFile(copy);
        Assert.Equal(a.Run(input)["logits"].Data, b.Run(input)["logits"].Data);
    }

    internal static FloatTensor RandomInput(int batch, int seed)
    {
        var rng = new Random(seed);
        var data = new float[batch * 28 * 28];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        return new FloatTensor(data, [batch, 1, 28, 28]);
    }
}
