using System.CommandLine;
using PtqTool.Pipeline;
using PtqTool.Reports;

namespace PtqTool.Cli.Commands;

/// <summary>ptq quantize: the main job.</summary>
public static class QuantizeCommand
{
    public static Command Create(CommandIo io)
    {
        var set = new QuantizationOptionSet();
        var stats = new Option<string[]>("--stats") { Description = "Quantize from statistics files (ptq calibrate --stats) instead of --calib; several are merged", AllowMultipleArgumentsPerToken = true };
        var eval = new Option<string?>("--eval") { Description = "Evaluation folder: a labelled ImageFolder (top-1/top-5) or unlabelled images (agreement, SQNR)" };
        var evalText = new Option<string?>("--eval-text") { Description = "Evaluation sentences for a BERT-class encoder: a text file, one a line (with --vocab); held out from --calib-text" };
        var evalLimit = new Option<int?>("--eval-limit") { Description = "Use at most N evaluation samples" };
        var output = new Option<string?>("--out") { Description = "Output model (default MODEL.int8.onnx beside the input)" };
        var report = new Option<string[]>("--report") { Description = "Write the report: .json (schema ptq-report/1) or .md; repeatable", AllowMultipleArgumentsPerToken = true };
        var maxDrop = new Option<double?>("--max-drop") { Description = "CI gate: exit 3 when the top-1 drop (points) exceeds this; without labels, 100 - agreement" };
        var metric = new Option<string?>("--metric") { Description = "What the gate compares: top1, agreement, sqnr or cosine (default: top1 with labels, agreement for [batch, classes] outputs, else sqnr)" };
        var minSqnr = new Option<double?>("--min-sqnr") { Description = "CI gate for --metric sqnr: exit 3 when the output SQNR (dB) is below this" };
        var minCosine = new Option<double?>("--min-cosine") { Description = "CI gate for --metric cosine: exit 3 when the mean output cosine is below this" };
        var synthetic = new Option<string?>("--synthetic") { Description = "Data-free calibration: zeroq (distilled from BatchNormalization statistics) or gaussian (N(0,1) inputs)" };
        var avgBits = new Option<double?>("--avg-bits") { Description = "Mixed precision: per-layer weight bits (2/4/6/8) chosen by sensitivity with this average at most (docs/mixed-precision.md)" };
        var autoFallback = new Option<bool>("--auto-fallback") { Description = "While the gate fails on --eval, raise the weight bits of the layer that gains most per added bit, and measure again; with every layer at its widest, keep nodes in float in leave-one-out order until the gate holds" };
        var sensitivitySamples = new Option<int>("--sensitivity-samples") { Description = "Samples layer sensitivities are measured on (--avg-bits, --auto-fallback)", DefaultValueFactory = _ => MixedPrecisionStep.DefaultSensitivitySamples };
        var distill = new DistillOptionSet();
        var command = new Command("quantize", "Quantize a model to QDQ INT8 and report what it cost");
        set.AddTo(command);
        command.Options.Add(synthetic);
        distill.AddTo(command);
        foreach (var o in new Option[] { stats, eval, evalText, evalLimit, output, report, maxDrop, metric, minSqnr, minCosine, avgBits, autoFallback, sensitivitySamples }) command.Options.Add(o);
        command.SetAction(parse => io.Guard(() =>
        {
            if (parse.GetValue(eval) is not null && parse.GetValue(evalText) is not null) throw new PtqException("--eval and --eval-text both give evaluation data; give one");
            var request = (set.Read(parse, parse.GetValue(evalText)) with
            {
                StatsPaths = parse.GetValue(stats) ?? [],
                EvalDir = parse.GetValue(eval) ?? parse.GetValue(evalText),
                EvalLimit = parse.GetValue(evalLimit),
                OutputPath = parse.GetValue(output),
                ReportPaths = parse.GetValue(report) ?? [],
                MaxDrop = parse.GetValue(maxDrop),
                Metric = parse.GetValue(metric),
                MinSqnr = parse.GetValue(minSqnr),
                MinCosine = parse.GetValue(minCosine),
                Synthetic = parse.GetValue(synthetic),
                Distill = distill.Read(parse),
                AverageWeightBits = parse.GetValue(avgBits),
                AutoFallback = parse.GetValue(autoFallback),
                SensitivitySamples = parse.GetValue(sensitivitySamples),
            }).CheckSingleCalibrationSource();
            var progress = io.Progress(parse.GetValue(set.Quiet));
            // The fallback searches on a calibration of its own, then the final options are quantized as a normal run.
            var fallback = request.AutoFallback ? FallbackJob.Find(request, progress) : null;
            var final = fallback is null ? request : request with { Options = fallback.Options, AverageWeightBits = null, AutoFallback = false };
            var result = new QuantizeJob(final, progress, fallback).Run();
            io.Out.Write(ReportWriters.Console(result));
            if (!result.GatePassed)
            {
                io.Err.WriteLine(result.Gate.Passes(result.GateOutputs)
                    ? $"ptq: gate failed: {result.Saturation.Summary}, and this CPU does not run those kernels: no accuracy measured here holds for the target"
                    : $"ptq: gate failed: {ReportWriters.GateText(result, result.Gate.Threshold!.Value)} ({result.GateBasis})");
                return ExitCodes.QualityGateFailed;
            }
            return 0;
        }));
        return command;
    }
}
