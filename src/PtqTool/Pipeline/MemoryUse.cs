namespace PtqTool.Pipeline;

/// <summary>Resident memory of this process (Linux /proc/self/status; elsewhere the runtime's working-set figures).</summary>
public static class MemoryUse
{
    /// <summary>Peak resident set size so far (VmHWM).</summary>
    public static long PeakBytes() => Read("VmHWM:") ?? System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64;

    /// <summary>Current resident set size (VmRSS).</summary>
    public static long CurrentBytes() => Read("VmRSS:") ?? System.Diagnostics.Process.GetCurrentProcess().WorkingSet64;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    /// <summary>
    /// Gives memory freed by disposed ONNX Runtime sessions back to the OS: glibc keeps freed native blocks in its heaps,
    /// so without this each phase's sessions would stay in the resident size after they are gone.
    /// </summary>
    public static void Release()
    {
        // Aggressive: also decommits the freed regions (large arrays of a finished phase would otherwise stay resident).
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        if (!OperatingSystem.IsLinux()) return;
        try { MallocTrim(0); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
    }

    /// <summary>With PTQ_TRACE_MEMORY=1, one line per phase on stderr: how far current and peak RSS have got.</summary>
    public static void Trace(string phase)
    {
        if (Environment.GetEnvironmentVariable("PTQ_TRACE_MEMORY") != "1") return;
        Console.Error.WriteLine($"memory after {phase}: RSS {CurrentBytes() >> 20} MiB, peak {PeakBytes() >> 20} MiB, threads {System.Diagnostics.Process.GetCurrentProcess().Threads.Count}, {(DateTime.Now - System.Diagnostics.Process.GetCurrentProcess().StartTime).TotalSeconds:0.00} s since the process started");
    }

    private static long? Read(string key)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(key, StringComparison.Ordinal))
                    return long.Parse(line[key.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }
}
