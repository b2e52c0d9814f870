using System.CommandLine;
using PtqTool.Data;
using PtqTool.Evaluation;
using PtqTool.Onnx;
using PtqTool.Pipeline;

namespace PtqTool.Cli.Commands;

/// <summary>ptq eval MODEL --eval DIR: top-1/top-5 of one model on a labelled ImageFolder.</summary>
public static class EvalCommand
{
    public static Command Create(CommandIo io)
    {
        var model = new Argument<string>("model") { Description = "ONNX model file" };
        var eval = new Option<string>("--eval") { Description = "Labelled ImageFolder (one sub-folder per class, sorted order = class index)", Required = true };
        var batch = new Option<int>("--batch") { Description = "Batch size", DefaultValueFactory = _ => 32 };
        var limit = new Option<int?>("--eval-limit", "--limit") { Description = "Use at most N images (spread evenly over the classes)" };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads (0 = automatic)", DefaultValueFactory = _ => 0 };
        var quiet = new Option<bool>("--quiet") { Description = "No progress on stderr" };
        var pre = new PreprocessingOptions();
        var command = new Command("eval", "Top-1 (and top-5) accuracy of a model on a labelled image folder");
        command.Arguments.Add(model);
        command.Options.Add(eval);
        command.Options.Add(batch);
        command.Options.Add(limit);
        command.Options.Add(quiet);
        command.Options.Add(threads);
        pre.AddTo(command);
        command.SetAction(parse => io.Guard(() =>
        {
            string modelPath = parse.GetValue(model)!;
            int b = parse.GetValue(batch), t = parse.GetValue(threads);
            if (b is < 1 or > QuantizeRequest.MaxBatch) throw new PtqException($"--batch: {b} must be in 1..{QuantizeRequest.MaxBatch}");
            if (t < 0 || t > Environment.ProcessorCount) throw new PtqException($"--threads: {t} must be 0 (automatic) to {Environment.ProcessorCount}");
            if (parse.GetValue(limit) is < 1) throw new PtqException($"--eval-limit: {parse.GetValue(limit)} must be at least 1");
            new IoCheck().Input(modelPath, "model").InputFolder(parse.GetValue(eval), "evaluation folder").Verify();
            using var runner = OrtRunner.FromFile(modelPath, new RunnerOptions { Threads = t });
            var inputs = ModelInputs.Of(runner);
            var overrides = pre.Read(parse);
            var (preprocessing, sampleShape) = ModelInputs.Resolve(inputs, modelPath, overrides);
            var (files, classes) = SampleFolder.ListLabelled(parse.GetValue(eval)!, ModelInputs.Named(inputs));
            if (parse.GetValue(limit) is int n) files = Subset.Spread(files, n);
            var output = runner.OutputShape(runner.OutputNames[0]);
            if (output.Length != 2 || (output[1] > 0 && output[1] < classes.Length))
                throw new PtqException($"{parse.GetValue(eval)}: has {classes.Length} classes, but output '{runner.OutputNames[0]}' has shape [{string.Join(", ", output)}]: not [batch, ≥{classes.Length}] class scores");
            var reader = ModelInputs.Reader(inputs, files, preprocessing, sampleShape, b, overrides.Audio);
            var progress = io.Progress(parse.GetValue(quiet));
            progress.Start("eval", files.Count);
            var acc = ModelScorer.Score(runner, reader.Read(progress.Report));
            progress.Finish();
            io.Out.WriteLine($"{modelPath}: top-1 {Format.F(acc.Top1)}%{(classes.Length >= 5 ? $"  top-5 {Format.F(acc.Top5)}%" : "")}  on {acc.Samples} images, {classes.Length} classes{(reader.Skipped > 0 ? $" ({reader.Skipped} skipped)" : "")}");
            return 0;
        }));
        return command;
    }
}
