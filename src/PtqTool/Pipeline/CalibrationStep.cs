using PtqTool.Calibration;
using PtqTool.Data;

namespace PtqTool.Pipeline;

/// <summary>Gets activation statistics: from stats files (merged), or by running calibration images through the folded model.</summary>
public static class CalibrationStep
{
    public static (ActivationStatistics Stats, string Source) Run(PreparedModel model, QuantizeRequest request, ProgressReporter progress)
    {
        if (request.StatsPaths.Count > 0)
        {
            var merged = LoadMerged(request.StatsPaths, model.Sha256);
            var missing = model.Plan.StatsTensors.Where(t => !merged.Tensors.ContainsKey(t)).ToList();
            if (missing.Count > 0)
                throw new PtqException($"{request.StatsPaths[0]}: lacks statistics for {missing.Count} tensor(s), e.g. '{missing[0]}' (calibrated with other --exclude or activation options?)");
            return (merged, $"{request.StatsPaths.Count} statistics file(s)");
        }
        if (request.CalibDir is null)
            throw new PtqException("no calibration data: give --calib DIR or --stats FILE");
        var files = SampleFolder.List(request.CalibDir);
        // --limit picks the data set; --shard then splits that set, so shards together see exactly what one run sees.
        if (request.Limit is int limit) files = Subset.Spread(files, limit);
        if (request.Shard is (int index, int count)) files = SampleFolder.Shard(files, index, count);
        if (files.Count == 0) throw new PtqException($"{request.CalibDir}: this shard holds no samples");
        var reader = new BatchReader(files, model.Preprocessing, model.SampleShape, request.Batch) { Strict = request.Strict };
        progress.Start("calibrating", files.Count);
        var stats = StatisticsCollector.Collect(model.Folded.Model, model.Plan.StatsTensors, reader.Read(progress.Report), model.Sha256,
            new Onnx.RunnerOptions { Threads = request.Threads }, channelTensors: model.Plan.Weights.Select(w => w.Node.Input[0]).Distinct().ToList());
        progress.Finish();
        stats.Skipped = reader.Skipped;
        foreach (var w in reader.Warnings.Take(5)) progress.Message($"warning: skipped {w}");
        if (reader.Skipped > 5) progress.Message($"warning: skipped {reader.Skipped} files in all");
        if (stats.Samples == 0) throw new PtqException($"{request.CalibDir}: no sample could be read ({reader.Skipped} skipped)");
        return (stats, $"{request.CalibDir}{(request.Shard is (int i, int n) ? $" shard {i}/{n}" : "")}");
    }

    public static ActivationStatistics LoadMerged(IReadOnlyList<string> paths, string expectedSha256)
    {
        ActivationStatistics? merged = null;
        foreach (var path in paths)
        {
            var s = ActivationStatistics.Load(path);
            if (s.ModelSha256 != expectedSha256)
                throw new PtqException($"{path}: statistics are of a different model file (sha256 differs)");
            if (merged is null) merged = s;
            else merged.Merge(s, path);
        }
        return merged ?? throw new PtqException("--stats: no files given");
    }
}
