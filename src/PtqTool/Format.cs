using System.Globalization;

namespace PtqTool;

/// <summary>Human-readable numbers for console output.</summary>
public static class Format
{
    public static string Bytes(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => (bytes / 1024.0).ToString("0.0", CultureInfo.InvariantCulture) + " KiB",
        _ => (bytes / (1024.0 * 1024.0)).ToString("0.00", CultureInfo.InvariantCulture) + " MiB",
    };

    public static string F(double value, int decimals = 2) => value.ToString("F" + decimals, CultureInfo.InvariantCulture);

    /// <summary>A change with its sign: "+0.25", "-1.50", and "+0.00" (never "-0.00").</summary>
    public static string Signed(double value, int decimals = 2)
    {
        string text = F(value, decimals);
        return text.TrimStart('-').All(ch => ch is '0' or '.') ? "+" + text.TrimStart('-') : value > 0 ? "+" + text : text;
    }

    public static string Duration(TimeSpan t) => t.TotalHours >= 1 ? t.ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture) : t.ToString(@"m\:ss", CultureInfo.InvariantCulture);
}
