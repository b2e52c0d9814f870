using System.CommandLine;
using PtqTool.Reports;
using PtqTool.Scales;

namespace PtqTool.Cli.Commands;

/// <summary>ptq plot loss: MSQE(s) and QSin(s) curves for sampled distributions and segments; ptq plot multipoint: accuracy vs added MACs from reports.</summary>
public static class PlotCommand
{
    public static readonly string[] AllDistributions = ["normal", "laplace"];
    public static readonly string[] AllSegments = ["-128,127", "-8,7", "-2,1"];

    public static Command Create(CommandIo io)
    {
        var dist = new Option<string>("--dist") { Description = "normal or laplace (any of normal, laplace, uniform, bimodal, heavy, relu)", DefaultValueFactory = _ => "normal" };
        var segment = new Option<string>("--segment") { Description = "Integer segment l,u (e.g. -128,127, -8,7, -2,1)", DefaultValueFactory = _ => "-128,127" };
        var samples = new Option<int>("--samples") { Description = "Number of samples drawn", DefaultValueFactory = _ => 100_000 };
        var seed = new Option<int>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 0 };
        var output = new Option<string?>("--out") { Description = "PNG file to write" };
        var all = new Option<bool>("--all") { Description = "Draw every distribution × segment combination (normal, laplace × [-128,127], [-8,7], [-2,1])" };
        var outDir = new Option<string?>("--out-dir") { Description = "Folder for --all" };
        var loss = new Command("loss", "Plot MSQE(s) and QSin(s) against the scale s, minima marked");
        foreach (var o in new Option[] { dist, segment, samples, seed, output, all, outDir }) loss.Options.Add(o);
        loss.SetAction(parse => io.Guard(() =>
        {
            int n = parse.GetValue(samples);
            if (n < 10) throw new PtqException($"--samples: {n} is too few (at least 10)");
            var jobs = new List<(string Dist, string Segment, string Path)>();
            if (parse.GetValue(all))
            {
                string dir = parse.GetValue(outDir) ?? throw new PtqException("--all needs --out-dir");
                foreach (var d in AllDistributions)
                    foreach (var s in AllSegments)
                        jobs.Add((d, s, Path.Combine(dir, $"loss-{d}-{IntegerRange.Parse(s).Levels}levels.png")));
            }
            else
            {
                jobs.Add((parse.GetValue(dist)!, parse.GetValue(segment)!, parse.GetValue(output) ?? throw new PtqException("--out is required (or use --all --out-dir DIR)")));
            }
            foreach (var (d, s, path) in jobs)
            {
                var range = IntegerRange.Parse(s);
                var values = SyntheticSamples.Draw(d, n, parse.GetValue(seed));
                var curve = LossCurvePlot.Compute(values, range);
                LossCurvePlot.Save(curve, $"{d}, segment {range}, {n:N0} samples", path);
                io.Out.WriteLine($"{path}: MSQE min at s={curve.MsqeArgMin:G5}, QSin min at s={curve.QSinArgMin:G5}");
            }
            return 0;
        }));
        var reports = new Argument<string[]>("reports") { Description = "ptq quantize --report JSON files (with and without --multipoint)", Arity = ArgumentArity.OneOrMore };
        var curveOut = new Option<string>("--out") { Description = "PNG file to write", Required = true };
        var multipoint = new Command("multipoint", "Plot accuracy and output SQNR against the multiply-adds second weight terms add, one line per model and width");
        multipoint.Arguments.Add(reports);
        multipoint.Options.Add(curveOut);
        multipoint.SetAction(parse => io.Guard(() =>
        {
            var points = MultipointPlot.Read(parse.GetValue(reports)!);
            string path = parse.GetValue(curveOut)!;
            MultipointPlot.Save(points, path);
            io.Out.WriteLine($"{path}: {points.Count} point(s) in {points.Select(p => p.Series).Distinct().Count()} line(s)");
            return 0;
        }));
        var command = new Command("plot", "Draw plots");
        command.Subcommands.Add(loss);
        command.Subcommands.Add(multipoint);
        return command;
    }
}
