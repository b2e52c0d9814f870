using PtqTool.Reports;
using PtqTool.Rewrite;

namespace PtqTool.Pipeline;

/// <summary>
/// One calibration pass kept in a temporary statistics file, and any number of quantize runs from it with other
/// quantization options (`ptq sweep`, `ptq sensitivity`). The temporary folder goes with <see cref="Dispose"/>.
/// </summary>
public sealed class CalibratedRuns : IDisposable
{
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("ptq-runs-");
    private readonly QuantizeRequest _fromStats;

    /// <summary>The statistics every run here uses, where they came from, and the synthetic samples they were made of.</summary>
    public CalibrationStep.Kept Calibration { get; }

    /// <param name="prepared">Its plan's statistics tensors are the ones collected: every later run's plan must need no others.</param>
    public CalibratedRuns(PreparedModel prepared, QuantizeRequest request, ProgressReporter progress)
    {
        try
        {
            // Later variants may ask for bias correction: keep the channel means it needs.
            Onnx.FloatTensor? synthetic = null;
            var (stats, source) = CalibrationStep.Run(prepared, request with { KeepChannelMeans = true }, progress, s => synthetic = s);
            Calibration = new CalibrationStep.Kept(stats, source, synthetic);
            string statsPath = Path.Combine(_work.FullName, "stats.json");
            stats.Save(statsPath);
            _fromStats = request with
            {
                StatsPaths = [statsPath], Synthetic = null, ReportPaths = [], MaxDrop = null, MinSqnr = null, MinCosine = null, AutoFallback = false,
                OutputPath = Path.Combine(_work.FullName, "model.onnx"),
            };
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Quantizes and evaluates from the kept statistics with these options.</summary>
    /// <param name="refine">false: each tensor's own scales (--refine off), whatever the request asked (a cheaper ranking run).</param>
    /// <param name="gateOnly">A search step: the report's outputs only (<see cref="QuantizeRequest.GateOnly"/>).</param>
    public QuantizationReport Quantize(QuantizationOptions options, bool refine = true, bool gateOnly = false) =>
        new QuantizeJob(_fromStats with { Options = refine ? options : options with { OutputBiasCorrection = false }, Refine = refine ? _fromStats.Refine : "off", GateOnly = gateOnly }, ProgressReporter.Silent, statsSamples: Calibration.Synthetic).Run();

    /// <summary>Whether the kept statistics hold every tensor <paramref name="plan"/> observes.</summary>
    public bool Covers(Rewrite.QuantizationPlan plan) => plan.StatsTensors.All(Calibration.Stats.Tensors.ContainsKey);

    public void Dispose()
    {
        try { _work.Delete(recursive: true); } catch (IOException) { }
    }
}
