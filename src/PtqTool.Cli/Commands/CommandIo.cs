using PtqTool.Pipeline;

namespace PtqTool.Cli.Commands;

/// <summary>The console streams a command writes to, and the error boundary every command runs inside.</summary>
public sealed record CommandIo(TextWriter Out, TextWriter Err)
{
    private ProgressReporter? _progress;

    /// <summary>
    /// Runs a command body: a <see cref="PtqException"/> becomes one line "ptq: error: ..." on stderr and its exit code;
    /// anything else is an internal error (exit 1) with the exception's type and message.
    /// </summary>
    public int Guard(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (PtqException e)
        {
            _progress?.EndLine();
            Err.WriteLine($"ptq: error: {e.Message}");
            return e.ExitCode;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _progress?.EndLine();
            Err.WriteLine($"ptq: internal error: {e.GetType().Name}: {e.Message}");
            if (Environment.GetEnvironmentVariable("PTQ_DEBUG") == "1") Err.WriteLine(e);
            return ExitCodes.InternalError;
        }
    }

    public ProgressReporter Progress(bool quiet) => _progress = new(quiet, Err, interactive: ReferenceEquals(Err, Console.Error) && !Console.IsErrorRedirected);
}
