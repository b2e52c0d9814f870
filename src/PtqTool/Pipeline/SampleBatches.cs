using PtqTool.Data;

namespace PtqTool.Pipeline;

/// <summary>A few hundred samples held in memory for work that passes over them many times (layer sensitivity, learned rounding).</summary>
public static class SampleBatches
{
    /// <summary>
    /// Up to <paramref name="count"/> samples of --calib (images, tensor files, or --calib-text's sentences; within --limit)
    /// spread over it, else the synthetic calibration samples (ZeroQ data), else --eval's. Each batch is a feed of every model input
    /// (a model with several inputs gets them by name; samples of different sequence lengths come in separate batches).
    /// </summary>
    /// <param name="purpose">The option asking, for messages ("--avg-bits").</param>
    public static List<Onnx.ModelFeed> Load(PreparedModel model, QuantizeRequest request, int count, Onnx.FloatTensor? synthetic, string purpose)
    {
        if (request.CalibDir is null && synthetic is not null)
            return CalibrationStep.Batches(synthetic.Slice(0, Math.Min(synthetic.Batch, count)), request.Batch).Select(b => b.Input).ToList();
        string dir = request.CalibDir ?? request.EvalDir
            ?? throw new PtqException($"{purpose}: this needs samples: give --calib DIR or --eval DIR");
        // From --calib, within --limit (the held-out checks pick theirs from the same set); --eval's as they are.
        var files = Subset.Spread(request.CalibDir is not null ? model.CalibrationSamples(request) : model.ListSamples(dir), count);
        var reader = model.Reader(files, request.Batch, request.Strict);
        var batches = reader.Read().Select(b => b.Input).ToList();
        if (batches.Count == 0) throw new PtqException($"{dir}: no sample could be read for {purpose}");
        return batches;
    }
}
