using System.Collections.Concurrent;

namespace PtqTool.Data;

/// <summary>
/// Produces the next items of a sequence on a background thread while the consumer works on the current one (image
/// decoding overlapped with inference). At most <c>depth</c> items wait; an exception of the producer surfaces at the
/// consumer, at the item where it happened; leaving the loop early stops the producer.
/// </summary>
public static class Prefetch
{
    public static IEnumerable<T> Ahead<T>(IEnumerable<T> source, int depth = 2)
    {
        using var queue = new BlockingCollection<(T Item, Exception? Error)>(depth);
        using var stop = new CancellationTokenSource();
        var producer = Task.Run(() =>
        {
            try
            {
                foreach (var item in source)
                {
                    if (stop.IsCancellationRequested) return;
                    queue.Add((item, null), stop.Token);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
            catch (Exception e) { try { queue.Add((default!, e), stop.Token); } catch (OperationCanceledException) { } }
            finally { queue.CompleteAdding(); }
        });
        try
        {
            foreach (var (item, error) in queue.GetConsumingEnumerable())
            {
                if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(error).Throw();
                yield return item;
            }
        }
        finally
        {
            stop.Cancel();
            try { producer.Wait(); } catch (AggregateException) { }
        }
    }
}
