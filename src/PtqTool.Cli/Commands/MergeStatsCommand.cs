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
            string path = parse.GetValue(output)!;
            var check = new PtqTool.Pipeline.IoCheck();
            foreach (var p in paths) check.Input(p, "statistics shard");
            check.Output(path, "merged statistics (--out)").Verify();
            var merged = ActivationStatistics.MergeShards(paths);
            merged.Save(path);
            io.Out.WriteLine($"{path}: {paths.Length} files, {merged.Tensors.Count} tensors, {merged.Samples} samples");
            return 0;
        }));
        return command;
    }
}
