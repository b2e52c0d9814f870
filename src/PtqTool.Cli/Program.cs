using System.CommandLine;
using PtqTool.Cli.Commands;

namespace PtqTool.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        // Ctrl-C / SIGINT: outputs are only staged until the very end, so deleting the staged files leaves nothing behind.
        Console.CancelKeyPress += (_, _) => PtqTool.Onnx.AtomicFile.DeleteStaged();
        return Run(args, Console.Out, Console.Error);
    }

    /// <summary>The real entry point, with the console streams passed in so tests can run the CLI in-process.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("ptq: post-training quantization for ONNX models (see README.md)");
        var io = new CommandIo(stdout, stderr);
        root.Subcommands.Add(InspectCommand.Create(io));
        root.Subcommands.Add(EvalCommand.Create(io));
        root.Subcommands.Add(QuantizeCommand.Create(io));
        root.Subcommands.Add(CalibrateCommand.Create(io));
        root.Subcommands.Add(MergeStatsCommand.Create(io));
        root.Subcommands.Add(CheckCommand.Create(io));
        root.Subcommands.Add(BenchCommand.Create(io));
        root.Subcommands.Add(DistillCommand.Create(io));
        root.Subcommands.Add(SweepCommand.Create(io));
        root.Subcommands.Add(SensitivityCommand.Create(io));
        root.Subcommands.Add(ParetoCommand.Create(io));
        root.Subcommands.Add(PlotCommand.Create(io));
        root.Subcommands.Add(CompareLossesCommand.Create(io));
        if (args.Length == 0)
        {
            stderr.WriteLine("ptq: error: no command given; commands: " + string.Join(", ", root.Subcommands.Select(c => c.Name)) + " (ptq --help, ptq <command> --help)");
            return PtqTool.ExitCodes.BadInput;
        }
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // Unknown options, missing arguments, values of the wrong type: bad input (exit 2), one line each.
            foreach (var error in parse.Errors) stderr.WriteLine($"ptq: error: {Readable(error.Message)}");
            stderr.WriteLine("ptq: see 'ptq --help' or 'ptq <command> --help'");
            return PtqTool.ExitCodes.BadInput;
        }
        return Invoke(parse, stdout, stderr);
    }

    /// <summary>System.CommandLine names .NET types in its messages ("System.Nullable`1[System.Int32]"): say what a user types.</summary>
    public static string Readable(string message) => System.Text.RegularExpressions.Regex.Replace(message,
        @"(System\.Nullable`1\[)?System\.(Int32|Int64|Double|Single|Boolean|String)\]?", m => m.Groups[2].Value switch
        {
            "Int32" or "Int64" => "an integer",
            "Double" or "Single" => "a number",
            "Boolean" => "true or false",
            _ => "text",
        });

    private static int Invoke(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
        return parse.Invoke(config);
    }
}
