using System.Diagnostics;

namespace PtqTool.Pipeline;

/// <summary>
/// Progress on stderr: "label done/total (pct) ETA". On a terminal one line is redrawn with \r a few times a second;
/// into a log (stderr redirected) a plain line is printed every 10% or 30 s at most. `--quiet` hides progress and
/// informational messages, never warnings.
/// </summary>
public sealed class ProgressReporter
{
    private readonly TextWriter? _writer;
    private readonly bool _quiet;
    private readonly bool _interactive;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private string _label = "";
    private int _total;
    private long _lastDrawMs = -100_000;
    private int _lastPct = -100;

    /// <param name="interactive">Redraw one line with \r; by default only when <paramref name="writer"/> is a terminal's stderr.</param>
    public ProgressReporter(bool quiet, TextWriter? writer = null, bool? interactive = null)
    {
        _writer = writer ?? Console.Error;
        _quiet = quiet;
        _interactive = interactive ?? (ReferenceEquals(_writer, Console.Error) && !Console.IsErrorRedirected);
    }

    /// <summary>Shows nothing at all, warnings included (for runs nested inside another command's progress).</summary>
    public static ProgressReporter Silent { get; } = new(quiet: true, TextWriter.Null);

    /// <summary>True while this reporter has drawn a progress line that was not ended (so an error message starts a new line).</summary>
    public bool LineOpen { get; private set; }

    public void Start(string label, int total)
    {
        Finish();
        _label = label;
        _total = total;
        _clock.Restart();
        _lastDrawMs = -100_000;
        _lastPct = -100;
    }

    public void Report(int done)
    {
        if (_quiet || _writer is null) return;
        long now = _clock.ElapsedMilliseconds;
        int pct = _total > 0 ? (int)(100L * done / _total) : 100;
        string eta = done > 0 && done < _total
            ? " ETA " + Format.Duration(TimeSpan.FromMilliseconds(now * (double)(_total - done) / done))
            : "";
        if (_interactive)
        {
            if (done < _total && now - _lastDrawMs < 250) return;
            _writer.Write($"\r{_label} {done}/{_total} ({pct}%){eta}   ");
            LineOpen = true;
        }
        else
        {
            if (done >= _total || (pct < _lastPct + 10 && now - _lastDrawMs < 30_000)) return;
            _writer.WriteLine($"{_label} {done}/{_total} ({pct}%){eta}");
            _lastPct = pct;
        }
        _lastDrawMs = now;
    }

    /// <summary>An informational line (hidden by --quiet), keeping the progress line intact.</summary>
    public void Message(string line)
    {
        if (_quiet) return;
        Warn(line);
    }

    /// <summary>A warning: shown even with --quiet.</summary>
    public void Warn(string line)
    {
        if (_writer is null) return;
        EndLine();
        _writer.WriteLine(line);
    }

    public void Finish()
    {
        if (_quiet || _writer is null || _label.Length == 0) return;
        if (!_interactive || LineOpen)
            _writer.WriteLine(_interactive
                ? $"\r{_label} done in {Format.Duration(_clock.Elapsed)}{new string(' ', 20)}"
                : $"{_label} done in {Format.Duration(_clock.Elapsed)}");
        LineOpen = false;
        _label = "";
    }

    /// <summary>Ends a drawn progress line, so the next output starts on its own line.</summary>
    public void EndLine()
    {
        if (!LineOpen) return;
        _writer?.WriteLine();
        LineOpen = false;
    }
}
