using System.CommandLine;
using PtqTool.Onnx;
using PtqTool.Pipeline;

namespace PtqTool.Cli.Commands;

/// <summary>ptq pareto: the mixed-precision frontier (Σ Ω vs average weight bits) and the measured accuracy of points on it.</summary>
public static class ParetoCommand
{
    public static Command Create(CommandIo io)
    {
        var set = new QuantizationOptionSet();
        var eval = new Option<string?>("--eval") { Description = "Evaluation folder: labelled ImageFolder (top-1) or unlabelled images" };
        var evalLimit = new Option<int?>("--eval-limit") { Description = "Use at most N evaluation samples" };
        var points = new Option<string>("--points") { Description = "Average weight bits of the mixed points to quantize and measure", DefaultValueFactory = _ => "3,4,5,6,7" };
        var sensitivitySamples = new Option<int>("--sensitivity-samples") { Description = "Samples layer sensitivities are measured on", DefaultValueFactory = _ => MixedPrecisionStep.DefaultSensitivitySamples };
        var output = new Option<string?>("--out") { Description = "Also write the Markdown table to this file" };
        var plot = new Option<string?>("--plot") { Description = "Write the frontier and the measured points as a PNG" };
        var command = new Command("pareto", "Mixed precision by layer sensitivity: the exact size/sensitivity frontier and measured points on it");
        set.AddTo(command);
        foreach (var o in new Option[] { eval, evalLimit, points, output, plot, sensitivitySamples }) command.Options.Add(o);
        command.SetAction(parse => io.Guard(() =>
        {
            var request = set.Read(parse) with { EvalDir = parse.GetValue(eval), EvalLimit = parse.GetValue(evalLimit), SensitivitySamples = parse.GetValue(sensitivitySamples) };
            if (request.CalibDir is null) throw new PtqException("pareto needs --calib DIR (calibration and layer sensitivity)");
            var targets = ParseTargets(parse.GetValue(points)!);
            new IoCheck().Input(request.ModelPath, "model").Output(parse.GetValue(output), "table (--out)").Output(parse.GetValue(plot), "plot (--plot)").Verify();
            var result = ParetoJob.Run(request, targets, io.Progress(parse.GetValue(set.Quiet)));
            string md = ParetoJob.Markdown(result, "ptq " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)));
            io.Out.Write(md);
            if (parse.GetValue(output) is string path) AtomicFile.WriteAllText(path, md);
            if (parse.GetValue(plot) is string png) Reports.ParetoPlot.Save(result, Path.GetFileName(request.ModelPath), png);
            return 0;
        }));
        return command;
    }

    private static List<double> ParseTargets(string text)
    {
        var result = new List<double>();
        foreach (var part in text.Split(','))
        {
            if (!double.TryParse(part, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double v) || !(v >= 2 && v <= 8))
                throw new PtqException($"--points: '{part}' is not an average bit width in 2..8");
            result.Add(v);
        }
        return result;
    }
}
