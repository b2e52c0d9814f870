using PtqTool.Data;
using PtqTool.Onnx;

namespace PtqTool.Pipeline;

/// <summary>
/// The data `ptq quantize` evaluates on, decided and checked before any calibration work: an --eval folder (labelled
/// ImageFolder or unlabelled samples), else a spread of the calibration samples, else fresh N(0,1) inputs (data-free).
/// </summary>
public sealed class EvaluationSet
{
    /// <summary>Samples compared when there is no --eval folder (taken from the calibration folder).</summary>
    public const int UnlabelledFallbackSamples = 256;

    private readonly List<SampleFile>? _files;
    private readonly FloatTensor? _synthetic;
    private readonly QuantizeRequest _request;
    private readonly PreparedModel _model;

    public string Source { get; }
    public int Total { get; }
    public bool Labelled { get; }

    private EvaluationSet(QuantizeRequest request, PreparedModel model, List<SampleFile>? files, FloatTensor? synthetic, string source, bool labelled)
    {
        _request = request;
        _model = model;
        _files = files;
        _synthetic = synthetic;
        Source = source;
        Labelled = labelled;
        Total = files?.Count ?? synthetic!.Batch;
    }

    public static EvaluationSet Resolve(QuantizeRequest request, PreparedModel model)
    {
        if (request.EvalDir is null && request.CalibDir is null && request.Synthetic is not null)
        {
            if (model.NamedInputs) throw new PtqException($"--synthetic: {model.Path} has inputs that are not one float tensor; give --eval DIR of .npz samples or --eval-text");
            var samples = new FloatTensor(Distill.ZeroQDistiller.Gaussian(request.Distill.Count * FloatTensor.Count(model.SampleShape), request.Distill.Seed + 1),
                [request.Distill.Count, .. model.SampleShape]);
            return new EvaluationSet(request, model, null, samples, "N(0,1) inputs (no --eval given, unlabelled)", false);
        }
        if (request.EvalDir is string dir)
        {
            bool labelled = Directory.Exists(dir) && Directory.GetDirectories(dir).Length > 0;
            List<SampleFile> files;
            if (labelled)
            {
                var (all, classes) = SampleFolder.ListLabelled(dir, model.NamedInputs);
                CheckClasses(dir, classes.Length, model);
                files = all;
            }
            else files = model.ListSamples(dir);
            if (request.EvalLimit is int n) files = Subset.Spread(files, n);
            var set = new EvaluationSet(request, model, files, null, labelled ? $"{dir} (labelled)" : $"{dir} (unlabelled)", labelled);
            set.Probe();
            return set;
        }
        if (request.CalibDir is not null)
        {
            var files = Subset.Spread(model.ListSamples(request.CalibDir), request.EvalLimit ?? UnlabelledFallbackSamples);
            return new EvaluationSet(request, model, files, null, $"{request.CalibDir} (calibration images, unlabelled)", false);
        }
        throw new PtqException("no evaluation data: give --eval DIR (with --stats there are no calibration images to compare on)");
    }

    public BatchReader? Reader { get; private set; }

    public IEnumerable<SampleBatch> Batches()
    {
        if (_synthetic is not null) return CalibrationStep.Batches(_synthetic, _request.Batch);
        Reader = _model.Reader(_files!, _request.Batch, _request.Strict);
        return Prefetch.Ahead(Reader.Read());
    }

    /// <summary>A labelled folder's classes must be scores of the model's first output, [batch, classes].</summary>
    private static void CheckClasses(string dir, int classes, PreparedModel model)
    {
        var shape = model.OutputShape;
        int scores = shape.Length >= 2 ? shape[^1] : -1;
        if (shape.Length != 2)
            throw new PtqException($"{dir}: a labelled folder needs a classifier, but output '{model.OutputName}' has shape [{string.Join(", ", shape)}] (give an unlabelled --eval folder)");
        if (scores > 0 && classes > scores)
            throw new PtqException($"{dir}: has {classes} class folders, but output '{model.OutputName}' gives {scores} scores");
    }

    /// <summary>Reads the first evaluation sample now, so a folder the model cannot take fails before calibration, not after.</summary>
    private void Probe()
    {
        var reader = _model.Reader(_files!.Take(1).ToList(), 1, strict: false);
        foreach (var _ in reader.Read()) break;
    }
}
