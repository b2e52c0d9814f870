using System.CommandLine;
using PtqTool.Onnx;
using PtqTool.Reports;

namespace PtqTool.Cli.Commands;

/// <summary>ptq compare-losses: the MSQE-at-chosen-scale table for synthetic distributions (docs/loss-comparison.md).</summary>
public static class CompareLossesCommand
{
    public static Command Create(CommandIo io)
    {
        var samples = new Option<int>("--samples") { Description = "Samples per distribution", DefaultValueFactory = _ => 100_000 };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0, Description = "Random seed" };
        var output = new Option<string?>("--out") { Description = "Also write the Markdown table to this file" };
        var command = new Command("compare-losses", "MSQE at the scale chosen by minmax, percentile, entropy, msqe and qsin on normal and laplace samples at 8/4/2 bits");
        command.Options.Add(samples);
        command.Options.Add(seed);
        command.Options.Add(output);
        command.SetAction(parse => io.Guard(() =>
        {
            int n = parse.GetValue(samples), s = parse.GetValue(seed);
            if (n is < 100 or > 10_000_000) throw new PtqException($"--samples: {n} must be in 100..10000000");
            new PtqTool.Pipeline.IoCheck().Output(parse.GetValue(output), "table (--out)").Verify();
            var rows = LossComparisonTable.Compute(["normal", "laplace"], [8, 4, 2], n, s);
            string md = LossComparisonTable.ToMarkdown(rows, n, s);
            io.Out.Write(md);
            if (parse.GetValue(output) is string path) AtomicFile.WriteAllText(path, md);
            return 0;
        }));
        return command;
    }
}
