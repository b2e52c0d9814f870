namespace PtqTool.Tests.Cli;

/// <summary>Runs the real ptq entry point in-process and captures its output (ptq keeps no static console state, so runs may overlap).</summary>
public static class CliRunner
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code;
        code = PtqTool.Cli.Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>`ptq quantize` writing DIR/NAME.onnx and its JSON report; asserts success and returns the model, the report and the model's bytes.</summary>
    public static (PtqTool.Onnx.Proto.ModelProto Model, System.Text.Json.Nodes.JsonNode Report, byte[] Bytes) Quantize(string dir, string name, params string[] args)
    {
        string output = Path.Combine(dir, name + ".onnx"), report = Path.Combine(dir, name + ".json");
        var (code, _, err) = Run(["quantize", .. args, "--out", output, "--report", report, "--quiet"]);
        Assert.True(code == 0, err);
        return (PtqTool.Onnx.OnnxModelFile.Load(output), System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(report))!, File.ReadAllBytes(output));
    }
}
