namespace PtqTool.Tests.Cli;

/// <summary>Runs the real ptq entry point in-process and captures its output.</summary>
public static class CliRunner
{
    private static readonly Lock Gate = new();

    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code;
        lock (Gate) code = PtqTool.Cli.Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}
