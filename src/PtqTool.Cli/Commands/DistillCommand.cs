using System.CommandLine;
using PtqTool.Distill;
using PtqTool.Pipeline;
using PtqTool.Reports;

namespace PtqTool.Cli.Commands;

/// <summary>ptq distill: ZeroQ synthetic calibration data from BatchNormalization statistics.</summary>
public static class DistillCommand
{
    public static Command Create(CommandIo io)
    {
        var set = new QuantizationOptionSet(OptionScope.Distill);
        var distill = new DistillOptionSet();
        var output = new Option<string>("--out") { Description = "Output folder (sample-NNNN.npy, preview-NNNN.png, loss.png)", Required = true };
        var command = new Command("distill", "Synthesize calibration data whose BatchNormalization statistics match the model's (ZeroQ)");
        set.AddTo(command);
        distill.AddTo(command);
        command.Options.Add(output);
        command.SetAction(parse => io.Guard(() =>
        {
            var options = distill.Read(parse).Validated();
            var request = (set.Read(parse) with { Distill = options, Synthetic = "zeroq" }).Validated();
            string folder = parse.GetValue(output)!;
            if (File.Exists(folder) || (Onnx.FileIdentity.KindOf(folder) is var k && k is Onnx.FileKind.Other))
                throw new PtqException($"{folder}: --out is a file, not a folder (distill writes sample-NNNN.npy, previews and loss.png into a folder)");
            new IoCheck().Input(request.ModelPath, "model").Output(Path.Combine(folder, "loss.png"), "distill output").Verify();
            var progress = io.Progress(parse.GetValue(set.Quiet));
            var model = PreparedModel.Prepare(request, progress.Warn);
            progress.Start("distilling (ZeroQ)", options.Iterations);
            var result = ZeroQDistiller.Run(model.NormalizedForRuntime(), model.SampleShape,
                options with { Threads = request.Threads, InputRange = CalibrationStep.ImageInputRange(model) }, progress.Report);
            progress.Finish();
            DistillOutputs.WriteSamples(result.Samples, folder);
            int previews = DistillOutputs.WritePreviews(result.Samples, model.Preprocessing, folder);
            DistillOutputs.WriteLossCurve(result.Losses, $"ZeroQ on {Path.GetFileName(request.ModelPath)}: {result.BatchNormLayers} BN layers, {options.Count} samples, lr {options.LearningRate}", Path.Combine(folder, "loss.png"));
            io.Out.WriteLine($"{folder}: {options.Count} samples (.npy{(previews > 0 ? " + PNG previews" : "")}), loss.png");
            io.Out.WriteLine($"  BN statistics loss {result.Losses[0]:G4} -> {result.Losses[^1]:G4} ({result.Losses[0] / Math.Max(result.Losses[^1], 1e-30):0.#}x lower) over {options.Iterations} iterations, {result.BatchNormLayers} BN layers");
            io.Out.WriteLine($"  one iteration (loss + gradient graph + Adam step, median) {Format.F(result.IterationMs)} ms vs one FP32 forward {Format.F(result.ForwardMs)} ms (median) on the same batch ({result.IterationMs / result.ForwardMs:0.0}x)");
            return 0;
        }));
        return command;
    }
}
