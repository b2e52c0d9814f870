using BenchmarkDotNet.Attributes;
using PtqTool.Scales;
using PtqTool.Scales.Losses;

namespace PtqTool.Benchmarks;

/// <summary>Time to choose one activation tensor's scale from its histogram (2048 bins per side), per loss.</summary>
[MemoryDiagnoser]
public class HistogramScaleBenchmarks
{
    private HistogramDistribution _symmetric = null!;
    private HistogramDistribution _relu = null!;

    [Params("minmax", "percentile", "entropy", "msqe", "qsin")]
    public string Loss { get; set; } = "";

    [GlobalSetup]
    public void Setup()
    {
        var h = new Histogram();
        h.Add(SyntheticSamples.Draw("laplace", 1_000_000, 1));
        _symmetric = new HistogramDistribution(h);
        var r = new Histogram();
        r.Add(SyntheticSamples.Draw("relu", 1_000_000, 2));
        _relu = new HistogramDistribution(r);
    }

    [Benchmark(Description = "int8 symmetric, laplace activations")]
    public QuantParams Symmetric() => ScaleLosses.Create(Loss).Choose(_symmetric, new QuantSpec(IntegerRange.Int8, true));

    [Benchmark(Description = "int8 asymmetric, ReLU activations")]
    public QuantParams Asymmetric() => ScaleLosses.Create(Loss).Choose(_relu, new QuantSpec(IntegerRange.Int8, false));
}

/// <summary>Per-channel weight scales of a 3×3 conv with 256 input and 256 output channels (589,824 weights).</summary>
[MemoryDiagnoser]
public class PerChannelWeightBenchmarks
{
    private float[] _weights = [];
    private static readonly int[] Shape = [256, 256, 3, 3];

    [Params("minmax", "percentile", "entropy", "msqe", "qsin")]
    public string Loss { get; set; } = "";

    [GlobalSetup]
    public void Setup() => _weights = SyntheticSamples.Draw("normal", 256 * 256 * 9, 3);

    [Benchmark(Description = "conv 3x3x256x256 per-channel int8")]
    public QuantParams[] PerChannel() =>
        PtqTool.Scales.PerChannel.Choose(_weights, Shape, 0, ScaleLosses.Create(Loss), new QuantSpec(new IntegerRange(-127, 127), true));
}
