namespace PtqTool.Tests;

/// <summary>Paths into the repository the tests run from.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string Model(string name) => Path.Combine(Root, "models", name + ".onnx");

    public static string[] BundledModels => ["fmnist_cnn", "fmnist_resnet"];

    public static string CalibDir => Path.Combine(Root, "calibration", "fashion-mnist", "calib");

    public static string EvalDir => Path.Combine(Root, "calibration", "fashion-mnist", "eval");

    public static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "ptq-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "PtqTool.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root (PtqTool.sln) not found");
    }
}
