using System.CommandLine;
using PtqTool.Kernels;
using PtqTool.Pipeline;

namespace PtqTool.Cli.Commands;

/// <summary>ptq check MODEL --target T: can the target's integer kernels saturate on this QDQ model (any tool's)?</summary>
public static class CheckCommand
{
    public static Command Create(CommandIo io)
    {
        var model = new Argument<string>("model") { Description = "Quantized (QDQ) ONNX model, from ptq or any other tool" };
        var target = new Option<string>("--target") { Description = "auto (this CPU), x86-vnni, x86-avx2, arm64 or portable", DefaultValueFactory = _ => "auto" };
        var command = new Command("check", "Check whether a target CPU's integer kernels can saturate on a QDQ model (exit 3 when they can)");
        command.Arguments.Add(model);
        command.Options.Add(target);
        command.SetAction(parse => io.Guard(() =>
        {
            var t = KernelTargets.Parse(parse.GetValue(target)!, CpuInfo.This);
            var result = CheckJob.Run(parse.GetValue(model)!, t);
            io.Out.Write(Reports.ReportWriters.SaturationText(result.Report, result.Model, result.RecordedTarget));
            return result.Report.CanSaturate ? ExitCodes.QualityGateFailed : ExitCodes.Ok;
        }));
        return command;
    }
}
