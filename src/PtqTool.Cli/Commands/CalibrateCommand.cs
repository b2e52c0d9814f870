using System.CommandLine;
using PtqTool.Pipeline;

namespace PtqTool.Cli.Commands;

/// <summary>ptq calibrate: activation statistics only, optionally for one shard of the folder.</summary>
public static class CalibrateCommand
{
    public static Command Create(CommandIo io)
    {
        var set = new QuantizationOptionSet(OptionScope.Calibrate);
        var stats = new Option<string>("--stats") { Description = "Statistics file to write (JSON, ptq-stats/1)", Required = true };
        var shard = new Option<string?>("--shard") { Description = "i/N: process the i-th (0-based) of N contiguous slices of the folder" };
        var command = new Command("calibrate", "Collect activation statistics (histograms) for later quantization or merging");
        set.AddTo(command);
        command.Options.Add(stats);
        command.Options.Add(shard);
        command.SetAction(parse => io.Guard(() =>
        {
            var request = set.Read(parse) with { Shard = ParseShard(parse.GetValue(shard)), KeepChannelMeans = true };
            request.Validated();
            var progress = io.Progress(parse.GetValue(set.Quiet));
            var model = PreparedModel.Prepare(request, progress.Warn);
            var check = request.CheckDataPaths(new IoCheck().Input(request.ModelPath, "model"))
                .Output(parse.GetValue(stats), "statistics file (--stats)");
            foreach (var f in model.ExternalDataFiles) check.Input(f, "model's external data");
            check.Verify();
            MemoryUse.Trace("preparing");
            var (result, source) = CalibrationStep.Run(model, request, progress);
            MemoryUse.Trace("calibration");
            string path = parse.GetValue(stats)!;
            result.Save(path);
            MemoryUse.Trace("saving the statistics");
            long peak = System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64;
            io.Out.WriteLine($"{path}: {result.Tensors.Count} tensors, {result.Samples} samples from {source} ({result.Skipped} skipped); peak RSS {Format.Bytes(peak)}");
            return 0;
        }));
        return command;
    }

    public static (int, int)? ParseShard(string? text)
    {
        if (text is null) return null;
        var parts = text.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], out int i) && int.TryParse(parts[1], out int n) && n >= 1 && i >= 0 && i < n) return (i, n);
        throw new PtqException($"--shard: '{text}' is not i/N with 0 <= i < N");
    }
}
