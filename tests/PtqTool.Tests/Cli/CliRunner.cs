namespace PtqTool.Tests.Cli;

/// <summary>Runs the real ptq entry point in-process and captures its output (ptq keeps no static console state, so runs may overlap).</summary>
public static class CliRunner
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code;
        code = PtqTool.Cli.Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}
