using System.Text.Json;
using PtqTool.Evaluation;
using PtqTool.Kernels;
using PtqTool.Onnx;

namespace PtqTool.Pipeline;

/// <summary>
/// `ptq bench`: latency of several models on the same random batch (every input of the model: <see cref="BenchInputs"/>), timed in alternating blocks
/// (<see cref="Latency.Interleaved"/>) so that load and clock changes fall on all alike, and where the time goes per op
/// type (ONNX Runtime's own profiler).
/// </summary>
public static class BenchJob
{
    public sealed record OpTime(string Op, double Ms, double Share);

    public sealed record ModelTime(string Model, double MedianMs, double BestMs, IReadOnlyList<OpTime> Ops);

    public sealed record Result(string Cpu, IReadOnlyList<BenchInputs.Input> Inputs, int Runs, IReadOnlyList<ModelTime> Models);

    /// <param name="sequenceLength">What symbolic dimensions other than batch and an image's size are set to (--seq-len).</param>
    public static Result Run(IReadOnlyList<string> models, int batch, string? size, int? sequenceLength, int runs, int threads, bool profile)
    {
        if (models.Count == 0) throw new PtqException("bench: give at least one model");
        if (runs is < 3 or > 100_000) throw new PtqException($"--runs: {runs} must be in 3..100000");
        if (batch is < 1 or > QuantizeRequest.MaxBatch) throw new PtqException($"--batch: {batch} must be in 1..{QuantizeRequest.MaxBatch}");
        if (sequenceLength is < 1 or > 1 << 20) throw new PtqException($"--seq-len: {sequenceLength} must be in 1..{1 << 20}");
        var options = new RunnerOptions { Threads = threads, Spinning = true };
        var runners = new List<OrtRunner>();
        try
        {
            foreach (var m in models) runners.Add(OrtRunner.FromFile(m, options));
            var (input, inputs) = BenchInputs.For(runners[0], new Lazy<OnnxGraph>(() => OnnxGraph.Load(models[0])), batch, size, sequenceLength, models[0]);
            for (int k = 1; k < runners.Count; k++)
                if (!runners[k].InputNames.Order(StringComparer.Ordinal).SequenceEqual(runners[0].InputNames.Order(StringComparer.Ordinal), StringComparer.Ordinal))
                    throw new PtqException($"{models[k]}: inputs {string.Join(", ", runners[k].InputNames)} differ from {models[0]}'s ({string.Join(", ", runners[0].InputNames)}); bench compares models with the same inputs");
            var times = Latency.Interleaved(runners.Select(r => (Action)(() => r.RunAndDrop(input))).ToList(), warmup: 3, runs);
            var result = new List<ModelTime>();
            for (int k = 0; k < runners.Count; k++)
                result.Add(new ModelTime(models[k], Latency.Median(times[k]), times[k].Min(), profile ? Profile(models[k], options, input) : []));
            return new Result(CpuInfo.This.Describe(), inputs, runs, result);
        }
        finally
        {
            foreach (var r in runners) r.Dispose();
        }
    }

    /// <summary>Mean time per run of each op type, from ONNX Runtime's profiler over a few runs.</summary>
    private static IReadOnlyList<OpTime> Profile(string model, RunnerOptions options, ModelFeed input)
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
