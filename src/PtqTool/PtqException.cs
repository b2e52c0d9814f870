namespace PtqTool;

/// <summary>Exit codes of the ptq command, documented in README.md.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int InternalError = 1;
    /// <summary>Bad input: missing or corrupt file, unsupported model, out-of-range option.</summary>
    public const int BadInput = 2;
    /// <summary>The quantized model's accuracy drop exceeded --max-drop (the report is still written).</summary>
    public const int QualityGateFailed = 3;
}

/// <summary>An error a user can act on: its message is one line that names the file and the problem.</summary>
public sealed class PtqException : Exception
{
    public int ExitCode { get; }

    public PtqException(string message, int exitCode = ExitCodes.BadInput, Exception? inner = null)
        : base(message, inner) => ExitCode = exitCode;
}
