using System.CommandLine;
using PtqTool.Calibration;

namespace PtqTool.Cli.Commands;

/// <summary>ptq merge-stats: merge shard statistics into one file (exact).</summary>
public static class MergeStatsCommand
{
    public static Command Create(CommandIo io)
    {
        var inputs = new Argument<string[]>("stats") { Description = "Statistics files of shards of the same model", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out") { Description = "Merged statistics file", Required = true };
        var command = new Command("merge-stats", "Merge statistics files from calibration shards");
        command.Arguments.Add(inputs);
        command.Options.Add(output);
        command.SetAction(parse => io.Guard(() =>
        {
            var paths = parse.GetValue(inputs)!;
            var merged = ActivationStatistics.Load(paths[0]);
            foreach (var p in paths.Skip(1)) merged.Merge(ActivationStatistics.Load(p), p);
            string path = parse.GetValue(output)!;
            merged.Save(path);
            io.Out.WriteLine($"{path}: {paths.Length} files, {merged.Tensors.Count} tensors, {merged.Samples} samples");
            return 0;
        }));
        return command;
    }
}
