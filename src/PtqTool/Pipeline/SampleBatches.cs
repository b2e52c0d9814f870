using PtqTool.Data;

namespace PtqTool.Pipeline;

/// <summary>A few hundred samples held in memory for work that passes over them many times (layer sensitivity, learned rounding).</summary>
public static class SampleBatches
{
    /// <summary>
    /// Up to <paramref name="count"/> images of --calib spread over the folder, else the synthetic calibration samples
    /// (ZeroQ data), else --eval's images.
    /// </summary>
    /// <param name="purpose">The option asking, for messages ("--avg-bits").</param>
    public static List<Onnx.FloatTensor> Load(PreparedModel model, QuantizeRequest request, int count, Onnx.FloatTensor? synthetic, string purpose)
    {
        if (request.CalibDir is null && synthetic is not null)
            return CalibrationStep.Batches(synthetic.Slice(0, Math.Min(synthetic.Batch, count)), request.Batch).Select(b => b.Input).ToList();
        string dir = request.CalibDir ?? request.EvalDir
            ?? throw new PtqException($"{purpose}: this needs samples: give --calib DIR or --eval DIR");
        var files = Subset.Spread(SampleFolder.List(dir), count);
        var reader = new BatchReader(files, model.Preprocessing, model.SampleShape, request.Batch) { Strict = request.Strict };
        var batches = reader.Read().Select(b => b.Input).ToList();
        if (batches.Count == 0) throw new PtqException($"{dir}: no sample could be read for {purpose}");
        return batches;
    }
}
