using System.CommandLine;
using PtqTool.Pipeline;

namespace PtqTool.Cli.Commands;

/// <summary>ptq bench MODEL [MODEL…]: latency on one random batch, models timed in turn, with an op-type profile.</summary>
public static class BenchCommand
{
    public static Command Create(CommandIo io)
    {
        var models = new Argument<string[]>("models") { Description = "ONNX models with the same inputs (e.g. FP32 and its INT8)", Arity = ArgumentArity.OneOrMore };
        var batch = new Option<int>("--batch") { Description = "Batch size", DefaultValueFactory = _ => 32 };
        var size = new Option<string?>("--size") { Description = "Input size WxH for models with symbolic spatial dimensions" };
        var seqLen = new Option<int?>("--seq-len") { Description = "Length for the other symbolic dimensions (a text encoder's sequence; integer inputs get token ids within the embedding table they index, at most 1..999, masks 1, token types 0)" };
        var runs = new Option<int>("--runs") { Description = "Timed runs per model", DefaultValueFactory = _ => 50 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads (0 = automatic)", DefaultValueFactory = _ => 0 };
        var profile = new Option<bool>("--profile") { Description = "Also show where the time goes per op type (ONNX Runtime profiler)" };
        var command = new Command("bench", "Time models on the same batch (medians, models run in turn) and show per-op time");
        command.Arguments.Add(models);
        foreach (var o in new Option[] { batch, size, seqLen, runs, threads, profile }) command.Options.Add(o);
        command.SetAction(parse => io.Guard(() =>
        {
            int t = parse.GetValue(threads);
            if (t < 0 || t > Environment.ProcessorCount) throw new PtqException($"--threads: {t} must be 0 (automatic) to {Environment.ProcessorCount}");
            var r = BenchJob.Run(parse.GetValue(models)!, parse.GetValue(batch), parse.GetValue(size), parse.GetValue(seqLen), parse.GetValue(runs), t, parse.GetValue(profile));
            string inputs = r.Inputs.Count == 1 ? $"input [{string.Join(", ", r.Inputs[0].Shape)}]"
                : "inputs " + string.Join(", ", r.Inputs.Select(i => $"{i.Name} [{string.Join(", ", i.Shape)}] {i.Type.ToString().ToLowerInvariant()}"));
            io.Out.WriteLine($"{inputs}, {r.Runs} runs each, on {r.Cpu}; peak RSS {PtqTool.Pipeline.MemoryUse.PeakBytes() >> 20} MiB");
            double first = r.Models[0].MedianMs;
            foreach (var m in r.Models)
            {
                io.Out.WriteLine($"  {m.Model}: median {Format.F(m.MedianMs)} ms, best {Format.F(m.BestMs)} ms ({first / m.MedianMs:0.00}x the first)");
                foreach (var op in m.Ops.Take(8)) io.Out.WriteLine($"      {op.Op,-28}{Format.F(op.Ms),9} ms  {100 * op.Share,5:0.0}%");
            }
            return 0;
        }));
        return command;
    }
}
