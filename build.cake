// PtqTool build script (Cake). Targets: Restore, Build, Test, Pack, Sample, Bench.
//   dotnet tool restore && dotnet cake --target=Sample   # the main job on the bundled model and data
//   dotnet tool restore && dotnet cake --target=Test     # the test suite; prints "N passed, N failed"
using System.Text.RegularExpressions;

var target = Argument("target", "Test");
var configuration = Argument("configuration", "Release");
var model = Argument("model", "models/fmnist_cnn.onnx");
var loss = Argument("loss", "qsin");
var artifacts = Directory("artifacts");
var ptqDll = $"src/PtqTool.Cli/bin/{configuration}/net10.0/linux-x64/ptq.dll";

Task("Restore").Does(() => DotNetRestore("PtqTool.sln"));

Task("Build").IsDependentOn("Restore").Does(() =>
    DotNetBuild("PtqTool.sln", new DotNetBuildSettings { Configuration = configuration, NoRestore = true }));

Task("Test").IsDependentOn("Build").Does(() =>
{
    var results = artifacts + Directory("test-results");
    CleanDirectory(results);
    Exception failure = null;
    try
    {
        DotNetTest("tests/PtqTool.Tests/PtqTool.Tests.csproj", new DotNetTestSettings
        {
            Configuration = configuration, NoBuild = true, NoRestore = true,
            Loggers = new[] { "trx;LogFileName=results.trx", "console;verbosity=normal" },
            ResultsDirectory = results,
        });
    }
    catch (Exception e) { failure = e; }
    var trx = GetFiles($"{results}/**/*.trx").FirstOrDefault();
    if (trx == null) throw new Exception("no test results written", failure);
    var counters = Regex.Match(System.IO.File.ReadAllText(trx.FullPath), "<Counters [^>]*");
    int Count(string name) => int.Parse(Regex.Match(counters.Value, name + "=\"(\\d+)\"").Groups[1].Value);
    Information($"{Count("passed")} passed, {Count("failed")} failed");
    if (failure != null) throw failure;
});

Task("Pack").IsDependentOn("Build").Does(() =>
    DotNetPack("src/PtqTool.Cli/PtqTool.Cli.csproj", new DotNetPackSettings
    {
        Configuration = configuration, NoBuild = true, OutputDirectory = artifacts + Directory("packages"),
    }));

Task("Sample").IsDependentOn("Build").Does(() =>
{
    var name = System.IO.Path.GetFileNameWithoutExtension(model);
    var args = new ProcessArgumentBuilder()
        .Append(ptqDll).Append("quantize").Append(model)
        .Append("--calib").Append("calibration/fashion-mnist/calib")
        .Append("--eval").Append("calibration/fashion-mnist/eval")
        .Append("--loss").Append(loss)
        .Append("--out").Append($"artifacts/sample/{name}.int8.onnx")
        .Append("--report").Append($"artifacts/sample/{name}.report.json")
        .Append("--report").Append($"artifacts/sample/{name}.report.md")
        .Append("--max-drop").Append("1.0");
    int code = StartProcess("dotnet", new ProcessSettings { Arguments = args });
    if (code != 0) throw new Exception($"ptq quantize exited with {code}");
});

Task("Bench").IsDependentOn("Build").Does(() =>
    DotNetRun("bench/PtqTool.Benchmarks/PtqTool.Benchmarks.csproj", new ProcessArgumentBuilder().Append("--filter").Append("*"),
        new DotNetRunSettings { Configuration = "Release", NoBuild = true }));

RunTarget(target);
