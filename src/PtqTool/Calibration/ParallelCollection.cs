using PtqTool.Onnx;
using PtqTool.Scales;

namespace PtqTool.Calibration;

/// <summary>
/// Runs calibration pieces through one ONNX Runtime session from several threads at once, each run single-threaded and
/// binned by the thread that ran it into histograms of its own, merged at the end. Inference and binning of different
/// pieces then fill every core without the wake-ups of an intra-op thread pool, and no thread waits for another.
/// The statistics are those of one thread: histograms merge exactly (nested power-of-two bins), and per-channel sums,
/// whose floating-point rounding depends on order, are added sample by sample in piece order through a small reorder
/// buffer.
/// </summary>
internal sealed class ParallelCollection
{
    private readonly int _workers;
    private readonly int _binThreads;
    private readonly IReadOnlyList<string> _tensors;
    private readonly IReadOnlySet<string> _channelTensors;
    private readonly ActivationStatistics _into;
    private readonly object _gate = new();
    private readonly Dictionary<int, List<(string Tensor, ChannelMeans.BatchSums Sums)>> _pending = [];
    private int _nextToTake, _nextToAdd;
    private bool _failed;

    private ParallelCollection(int workers, int binThreads, IReadOnlyList<string> tensors, IReadOnlySet<string> channelTensors, ActivationStatistics into)
    {
        _workers = workers;
        _binThreads = binThreads;
        _tensors = tensors;
        _channelTensors = channelTensors;
        _into = into;
    }

    /// <summary>
    /// Observes every piece of <paramref name="pieces"/> (enumerated under a lock, in order) on <paramref name="workers"/>
    /// threads (the caller's among them), adding histograms of the tensors already in <paramref name="into"/> and channel
    /// sums of <paramref name="channelTensors"/>. With <paramref name="binThreads"/> above 1, each run's outputs are
    /// binned on that many threads, each tensor by one of them (for runner sessions with intra-op threads, when fewer
    /// runs fit the memory budget at once than there are threads).
    /// </summary>
    public static void Run(OrtRunner runner, IEnumerable<ModelFeed> pieces, IReadOnlyList<string> tensors, IReadOnlySet<string> channelTensors,
        ActivationStatistics into, int workers, int binThreads = 1)
    {
        workers = Math.Max(1, workers);
        var collection = new ParallelCollection(workers, Math.Max(1, binThreads), tensors, channelTensors, into);
        using var source = pieces.GetEnumerator();
        var partials = Enumerable.Range(0, workers).Select(_ => collection.EmptyPartial()).ToArray();
        var others = Enumerable.Range(1, partials.Length - 1).Select(w => Task.Factory.StartNew(() => collection.Work(runner, source, partials[w]),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        Exception? mine = null;
        try { collection.Work(runner, source, partials[0]); }
        catch (Exception e) { mine = e; }
        try { Task.WaitAll(others); }
        catch (AggregateException e) when (mine is null) { System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw(); }
        catch (AggregateException) { }
        if (mine is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(mine).Throw();
        foreach (var partial in partials)
            foreach (var (name, h) in partial) into.Tensors[name].Merge(h);
    }

    private Dictionary<string, Histogram> EmptyPartial() =>
        _into.Tensors.Keys.ToDictionary(t => t, t => new Histogram(_into.Tensors[t].BinsPerSide), StringComparer.Ordinal);

    private void Work(OrtRunner runner, IEnumerator<ModelFeed> source, Dictionary<string, Histogram> histograms)
    {
        try
        {
            while (true)
            {
                ModelFeed piece;
                int index;
                lock (_gate)
                {
                    // A bounded reorder buffer: a thread far ahead of the oldest unfinished piece waits for it.
                    while (!_failed && _pending.Count >= 4 * _workers) Monitor.Wait(_gate);
                    if (_failed || !source.MoveNext()) return;
                    piece = source.Current;
                    index = _nextToTake++;
                }
                var sums = new List<(string, ChannelMeans.BatchSums)>();
                void Observe(string t, ReadOnlySpan<float> data, int[] shape)
                {
                    // Each tensor's histogram and sums are touched by one thread per piece, and a worker's pieces follow one another.
                    if (histograms.TryGetValue(t, out var h)) h.Add(data);
                    if (_channelTensors.Contains(t) && shape.Length >= 2)
                    {
                        var batch = ChannelMeans.SampleSums(data, shape);
                        lock (sums) sums.Add((t, batch));
                    }
                }
                using (var held = runner.RunHeld(piece, _tensors))
                {
                    if (_binThreads == 1) held.Visit(Observe);
                    else
                    {
                        int next = -1;
                        Parallel.For(0, _binThreads, new ParallelOptions { MaxDegreeOfParallelism = _binThreads }, _ =>
                        {
                            for (int i; (i = Interlocked.Increment(ref next)) < held.Count;) held.Visit(i, Observe);
                        });
                    }
                }
                lock (_gate)
                {
                    _pending[index] = sums;
                    while (_pending.Remove(_nextToAdd, out var ready))
                    {
                        foreach (var (t, batch) in ready)
                        {
                            if (!_into.Channels.TryGetValue(t, out var c)) _into.Channels[t] = c = new ChannelMeans(batch.Channels);
                            c.Add(batch);
                        }
                        _nextToAdd++;
                    }
                    Monitor.PulseAll(_gate);
                }
            }
        }
        catch
        {
            lock (_gate)
            {
                _failed = true;
                Monitor.PulseAll(_gate);
            }
            throw;
        }
    }
}
