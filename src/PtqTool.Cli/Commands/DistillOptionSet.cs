using System.CommandLine;
using PtqTool.Distill;

namespace PtqTool.Cli.Commands;

/// <summary>ZeroQ options shared by `distill` and `quantize --synthetic`.</summary>
public sealed class DistillOptionSet
{
    public Option<int> Count { get; } = new("--count") { Description = "Synthetic samples", DefaultValueFactory = _ => 64 };
    public Option<int> Iterations { get; } = new("--iterations") { Description = "Adam iterations", DefaultValueFactory = _ => 500 };
    public Option<double> LearningRate { get; } = new("--lr") { Description = "Adam learning rate", DefaultValueFactory = _ => 0.2 };
    public Option<int> Seed { get; } = new("--seed") { Description = "Random seed of the N(0,1) start", DefaultValueFactory = _ => 0 };

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { Count, Iterations, LearningRate, Seed }) command.Options.Add(o);
    }

    public DistillOptions Read(ParseResult parse) => new()
    {
        Count = parse.GetValue(Count),
        Iterations = parse.GetValue(Iterations),
        LearningRate = parse.GetValue(LearningRate),
        Seed = parse.GetValue(Seed),
    };
}
