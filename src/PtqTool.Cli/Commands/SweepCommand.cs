using System.CommandLine;
using PtqTool.Onnx;
using PtqTool.Pipeline;

namespace PtqTool.Cli.Commands;

/// <summary>ptq sweep: top-1 of every loss × bit configuration, as a Markdown table (docs/results.md).</summary>
public static class SweepCommand
{
    public static Command Create(CommandIo io)
    {
        var set = new QuantizationOptionSet(OptionScope.Sweep);
        var more = new Option<string[]>("--also") { Description = "More models to sweep with the same data", AllowMultipleArgumentsPerToken = true };
        var eval = new Option<string>("--eval") { Description = "Labelled evaluation folder", Required = true };
        var losses = new Option<string>("--losses") { Description = "Comma-separated losses", DefaultValueFactory = _ => "minmax,percentile,entropy,msqe,qsin" };
        var configs = new Option<string>("--configs") { Description = "Comma-separated wNaM bit configurations", DefaultValueFactory = _ => "w8a8,w4a8,w4a4" };
        var output = new Option<string?>("--out") { Description = "Also write the Markdown to this file" };
        var calibrations = new Option<string>("--calibrations") { Description = "Comma-separated calibration sources: real (--calib), zeroq, gaussian", DefaultValueFactory = _ => "real" };
        var seeds = new Option<string?>("--seeds") { Description = "Comma-separated seeds for zeroq/gaussian: one calibration per seed, tables show the mean (default: --seed)" };
        var distill = new DistillOptionSet();
        var command = new Command("sweep", "Quantize with every loss and bit configuration and tabulate top-1 and output SQNR");
        set.AddTo(command);
        foreach (var o in new Option[] { more, eval, losses, configs, output, calibrations, seeds }) command.Options.Add(o);
        distill.AddTo(command);
        command.SetAction(parse => io.Guard(() =>
        {
            var template = set.Read(parse) with { EvalDir = parse.GetValue(eval), Distill = distill.Read(parse) };
            var models = new[] { template.ModelPath }.Concat(parse.GetValue(more) ?? []).ToList();
            var lossList = parse.GetValue(losses)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var configList = parse.GetValue(configs)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(SweepJob.ParseConfig).ToList();
            var sources = parse.GetValue(calibrations)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var seedList = parse.GetValue(seeds) is string text ? SweepJob.ParseSeeds(text) : null;
            var check = new IoCheck().Output(parse.GetValue(output), "table (--out)");
            foreach (var m in models) check.Input(m, "model");
            check.Verify();
            var cells = SweepJob.Run(models, template, lossList, configList, io.Progress(parse.GetValue(set.Quiet)), sources, seedList);
            string md = SweepJob.Markdown(cells, "ptq " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)));
            io.Out.Write(md);
            if (parse.GetValue(output) is string path) AtomicFile.WriteAllText(path, md);
            return 0;
        }));
        return command;
    }
}
