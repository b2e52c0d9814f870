using System.Text.Json.Nodes;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Evaluation;

/// <summary>A model whose output is a feature map: its argmax agreement says nothing, its SQNR says the outputs match.</summary>
public class SqnrGateTests
{
    [Fact]
    public void A_map_output_is_gated_on_sqnr_not_on_argmax_agreement()
    {
        string dir = Repo.TempDir();
        string model = DeepModels.Write(dir, 3), data = DeepModels.Data(dir, 64);
        string report = Path.Combine(dir, "r.json");
        var r = CliRunner.Run("quantize", model, "--calib", data, "--eval", data, "--out", Path.Combine(dir, "q.onnx"), "--report", report, "--min-sqnr", "25", "--quiet");
        Assert.True(r.Code == 0, r.Err);
        var json = JsonNode.Parse(File.ReadAllText(report))!;
        Assert.Equal("sqnr", json["gate"]!["metric"]!.GetValue<string>());
        double sqnr = json["evaluation"]!["output_sqnr_db"]!.GetValue<double>(), agreement = json["evaluation"]!["top1_agreement"]!.GetValue<double>();
        Assert.True(sqnr > 25 && json["gate"]!["passed"]!.GetValue<bool>(), $"SQNR {sqnr}");
        // The report does not show a map's argmax agreement as if it were a score.
        Assert.False(json["evaluation"]!["class_scores"]!.GetValue<bool>());
        Assert.DoesNotContain("agreement", r.Out);
        // The same outputs judged by argmax agreement over the whole map would fail a 5-point gate.
        Assert.True(100 - agreement > 5, $"agreement {agreement}% is too high for this check to mean anything");
        var byAgreement = CliRunner.Run("quantize", model, "--calib", data, "--eval", data, "--out", Path.Combine(dir, "q2.onnx"), "--metric", "agreement", "--max-drop", "5", "--quiet");
        Assert.Equal(3, byAgreement.Code);
        // A threshold of another kind is refused, not silently applied.
        Hostile(CliRunner.Run("quantize", model, "--calib", data, "--out", Path.Combine(dir, "q3.onnx"), "--max-drop", "1", "--quiet"));
    }

    private static void Hostile((int Code, string Out, string Err) r) =>
        Robustness.Hostile.AssertBadInput(r, "--min-sqnr");
}
