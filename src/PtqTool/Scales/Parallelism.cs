namespace PtqTool.Scales;

/// <summary>
/// Parallel loops over tensors or channels use one worker per core: left unbounded, long scale searches make the
/// thread pool add threads, each with its own per-thread buffers, so memory would grow with the length of the loop.
/// </summary>
public static class Parallelism
{
    public static readonly ParallelOptions Bounded = new() { MaxDegreeOfParallelism = Environment.ProcessorCount };
}
