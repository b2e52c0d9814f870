using System.Diagnostics;

namespace PtqTool.Pipeline;

/// <summary>Shows "label done/total (pct) ETA" on stderr, at most a few times a second; silent when quiet.</summary>
public sealed class ProgressReporter
{
    private readonly TextWriter? _writer;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private string _label = "";
    private int _total;
    private long _lastDrawMs = -1000;
    private bool _drawn;

    public ProgressReporter(bool quiet, TextWriter? writer = null) => _writer = quiet ? null : writer ?? Console.Error;

    public static ProgressReporter Silent { get; } = new(quiet: true);

    /// <summary>True while some reporter has drawn a progress line that was not ended (so an error message starts a new line).</summary>
    public static bool AnyLineOpen { get; private set; }

    public void Start(string label, int total)
    {
        Finish();
        _label = label;
        _total = total;
        _clock.Restart();
        _lastDrawMs = -1000;
    }

    public void Report(int done)
    {
        if (_writer is null) return;
        long now = _clock.ElapsedMilliseconds;
        if (done < _total && now - _lastDrawMs < 250) return;
        _lastDrawMs = now;
        string eta = done > 0 && done < _total
            ? " ETA " + Format.Duration(TimeSpan.FromMilliseconds(now * (double)(_total - done) / done))
            : "";
        int pct = _total > 0 ? (int)(100L * done / _total) : 100;
        _writer.Write($"\r{_label} {done}/{_total} ({pct}%){eta}   ");
        _drawn = AnyLineOpen = true;
    }

    /// <summary>Prints a line that does not get overwritten (warnings), keeping the progress line intact.</summary>
    public void Message(string line)
    {
        if (_writer is null) return;
        if (_drawn) { _writer.WriteLine(); _drawn = AnyLineOpen = false; }
        _writer.WriteLine(line);
    }

    public void Finish()
    {
        if (_writer is null || !_drawn) return;
        _writer.WriteLine($"\r{_label} done in {Format.Duration(_clock.Elapsed)}{new string(' ', 20)}");
        _drawn = AnyLineOpen = false;
    }
}
