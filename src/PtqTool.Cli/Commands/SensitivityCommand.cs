using System.CommandLine;
using PtqTool.Onnx;
using PtqTool.Pipeline;

namespace PtqTool.Cli.Commands;

/// <summary>ptq sensitivity: which nodes cost the most when quantized (leave-one-out), to choose --exclude.</summary>
public static class SensitivityCommand
{
    public static Command Create(CommandIo io)
    {
        var set = new QuantizationOptionSet();
        var eval = new Option<string?>("--eval") { Description = "Evaluation folder: labelled ImageFolder or unlabelled images (default: --calib)" };
        var evalLimit = new Option<int?>("--eval-limit") { Description = "Use at most N evaluation samples" };
        var synthetic = new Option<string?>("--synthetic") { Description = "Data-free calibration: zeroq or gaussian" };
        var output = new Option<string?>("--out") { Description = "Also write the Markdown table to this file" };
        var distill = new DistillOptionSet();
        var command = new Command("sensitivity", "Rank quantized nodes by how much keeping each one in float recovers (leave-one-out)");
        set.AddTo(command);
        command.Options.Add(synthetic);
        distill.AddTo(command);
        // No --stats: a leave-one-out plan can need tensors a normal calibration does not record.
        foreach (var o in new Option[] { eval, evalLimit, output }) command.Options.Add(o);
        command.SetAction(parse => io.Guard(() =>
        {
            var request = (set.Read(parse) with
            {
                EvalDir = parse.GetValue(eval),
                EvalLimit = parse.GetValue(evalLimit),
                Synthetic = parse.GetValue(synthetic),
                Distill = distill.Read(parse),
            }).CheckSingleCalibrationSource();
            new IoCheck().Input(request.ModelPath, "model").Output(parse.GetValue(output), "table (--out)").Verify();
            var result = SensitivityJob.Run(request, io.Progress(parse.GetValue(set.Quiet)));
            string md = SensitivityJob.Markdown(result, "ptq " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)));
            io.Out.Write(md);
            if (parse.GetValue(output) is string path) AtomicFile.WriteAllText(path, md);
            return 0;
        }));
        return command;
    }
}
