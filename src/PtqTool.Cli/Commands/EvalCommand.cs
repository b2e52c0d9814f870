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
        var batch = new Option<int>("--batch") { Description = "Batch size", DefaultValueFactory = _ => 64 };
        var limit = new Option<int?>("--limit") { Description = "Use at most N images" };
        var quiet = new Option<bool>("--quiet") { Description = "No progress on stderr" };
        var pre = new PreprocessingOptions();
        var command = new Command("eval", "Top-1 (and top-5) accuracy of a model on a labelled image folder");
        command.Arguments.Add(model);
        command.Options.Add(eval);
        command.Options.Add(batch);
        command.Options.Add(limit);
        command.Options.Add(quiet);
        pre.AddTo(command);
        command.SetAction(parse => io.Guard(() =>
        {
            string modelPath = parse.GetValue(model)!;
            using var runner = OrtRunner.FromFile(modelPath);
            var input = ModelInput.Of(runner, modelPath);
            var preprocessing = PreprocessingResolver.Resolve(modelPath, input.DeclaredShape, pre.Read(parse));
            var (files, classes) = SampleFolder.ListLabelled(parse.GetValue(eval)!);
            if (parse.GetValue(limit) is int n) files = Subset.Spread(files, n);
            var reader = new BatchReader(files, preprocessing, input.SampleShape(preprocessing, modelPath), parse.GetValue(batch));
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
