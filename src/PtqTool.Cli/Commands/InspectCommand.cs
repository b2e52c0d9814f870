using System.CommandLine;
using PtqTool.Onnx;

namespace PtqTool.Cli.Commands;

/// <summary>ptq inspect MODEL: a model summary.</summary>
public static class InspectCommand
{
    public static Command Create(CommandIo io)
    {
        var model = new Argument<string>("model") { Description = "ONNX model file" };
        var command = new Command("inspect", "Summarize a model: opsets, inputs/outputs, op histogram, parameters, BatchNormalization, size");
        command.Arguments.Add(model);
        command.SetAction(parse => io.Guard(() =>
        {
            io.Out.Write(ModelSummary.Of(parse.GetValue(model)!).ToText());
            return 0;
        }));
        return command;
    }
}
