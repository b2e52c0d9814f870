using System.Text.Json;
using PtqTool.Evaluation;
using PtqTool.Kernels;
using PtqTool.Onnx;

namespace PtqTool.Pipeline;

/// <summary>
/// `ptq bench`: latency of several models on the same random batch, timed in alternating blocks
/// (<see cref="Latency.Interleaved"/>) so that load and clock changes fall on all alike, and where the time goes per op
/// type (ONNX Runtime's own profiler).
/// </summary>
public static class BenchJob
{
    public sealed record OpTime(string Op, double Ms, double Share);

    public sealed record ModelTime(string Model, double MedianMs, double BestMs, IReadOnlyList<OpTime> Ops);

    public sealed record Result(string Cpu, int[] InputShape, int Runs, IReadOnlyList<ModelTime> Models);

    public static Result Run(IReadOnlyList<string> models, int batch, string? size, int runs, int threads, bool profile)
    {
        if (models.Count == 0) throw new PtqException("bench: give at least one model");
        if (runs is < 3 or > 100_000) throw new PtqException($"--runs: {runs} must be in 3..100000");
        if (batch is < 1 or > QuantizeRequest.MaxBatch) throw new PtqException($"--batch: {batch} must be in 1..{QuantizeRequest.MaxBatch}");
        var options = new RunnerOptions { Threads = threads, Spinning = true };
        var runners = new List<OrtRunner>();
        try
        {
            foreach (var m in models) runners.Add(OrtRunner.FromFile(m, options));
            int[] shape = Shape(runners[0], batch, size, models[0]);
            var rng = new Random(0);
            var input = new FloatTensor(Enumerable.Range(0, FloatTensor.Count(shape)).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), shape);
            var times = Latency.Interleaved(runners.Select(r => (Action)(() => r.RunAndDrop(input))).ToList(), warmup: 3, runs);
            var result = new List<ModelTime>();
            for (int k = 0; k < runners.Count; k++)
                result.Add(new ModelTime(models[k], Latency.Median(times[k]), times[k].Min(), profile ? Profile(models[k], options, input) : []));
            return new Result(CpuInfo.This.Describe(), shape, runs, result);
        }
        finally
        {
            foreach (var r in runners) r.Dispose();
        }
    }

    private static int[] Shape(OrtRunner runner, int batch, string? size, string model)
    {
        var declared = runner.InputShape(runner.InputNames[0]);
        var shape = declared.ToArray();
        if (shape.Length > 0 && shape[0] <= 0) shape[0] = batch;
        if (size is not null && shape.Length == 4)
        {
            var (w, h) = PreprocessingResolver.ParseSize(size);
            bool nhwc = shape[3] is 1 or 3 && shape[1] is not (1 or 3);
            if (nhwc) { shape[1] = h; shape[2] = w; } else { shape[2] = h; shape[3] = w; }
        }
        if (shape.Any(d => d <= 0))
            throw new PtqException($"{model}: input shape [{string.Join(", ", declared)}] has symbolic dimensions; give --size WxH");
        return shape;
    }

    /// <summary>Mean time per run of each op type, from ONNX Runtime's profiler over a few runs.</summary>
    private static IReadOnlyList<OpTime> Profile(string model, RunnerOptions options, FloatTensor input)
    {
        const int runs = 10;
        string prefix = Path.Combine(Path.GetTempPath(), $"ptq-profile-{Environment.ProcessId}-{Guid.NewGuid():N}");
        string? trace = null;
        try
        {
            using (var runner = OrtRunner.FromFile(model, options with { ProfilePrefix = prefix }))
            {
                for (int i = 0; i < runs + 2; i++) runner.Run(input);
                trace = runner.EndProfiling();
            }
            var totals = new Dictionary<string, double>(StringComparer.Ordinal);
            using var doc = JsonDocument.Parse(File.ReadAllBytes(trace));
            foreach (var e in doc.RootElement.EnumerateArray())
            {
                if (!e.TryGetProperty("cat", out var cat) || cat.GetString() != "Node") continue;
                if (!e.TryGetProperty("name", out var name) || !name.GetString()!.EndsWith("_kernel_time", StringComparison.Ordinal)) continue;
                if (!e.TryGetProperty("args", out var args) || !args.TryGetProperty("op_name", out var op)) continue;
                totals[op.GetString()!] = totals.GetValueOrDefault(op.GetString()!) + e.GetProperty("dur").GetDouble() / 1000.0;
            }
            double all = totals.Values.Sum();
            // The first two runs were warm-up; their share is spread evenly, so divide by all runs.
            return totals.OrderByDescending(kv => kv.Value).Select(kv => new OpTime(kv.Key, kv.Value / (runs + 2), all > 0 ? kv.Value / all : 0)).ToList();
        }
        finally
        {
            // PTQ_PROFILE_DIR keeps the raw traces (chrome://tracing format) for a closer look.
            if (trace is not null && Environment.GetEnvironmentVariable("PTQ_PROFILE_DIR") is { Length: > 0 } keep)
                File.Copy(trace, Path.Combine(keep, Path.GetFileNameWithoutExtension(model) + ".profile.json"), overwrite: true);
            if (trace is not null) try { File.Delete(trace); } catch (IOException) { }
        }
    }
}
