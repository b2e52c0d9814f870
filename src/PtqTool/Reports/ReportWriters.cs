using System.Globalization;
using System.Text;
using System.Text.Json;
using PtqTool.Onnx;

namespace PtqTool.Reports;

/// <summary>Renders a <see cref="QuantizationReport"/> as JSON, Markdown or a console table.</summary>
public static class ReportWriters
{
    public const string Schema = "ptq-report/1";

    /// <summary>Writes by extension: .json or .md (anything else is an error).</summary>
    public static void Write(QuantizationReport report, string path)
    {
        string ext = Path.GetExtension(path).ToLowerInvariant();
        string text = ext switch
        {
            ".json" => Json(report),
            ".md" or ".markdown" => Markdown(report),
            _ => throw new PtqException($"--report: {path}: unknown format (use a .json or .md file name)"),
        };
        AtomicFile.WriteAllText(path, text);
    }

    public static string Json(QuantizationReport r)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("schema", Schema);
            w.WriteStartObject("model");
            w.WriteString("input", r.InputModel);
            w.WriteString("output", r.OutputModel);
            w.WriteNumber("fp32_bytes", r.Fp32Bytes);
            w.WriteNumber("int8_bytes", r.Int8Bytes);
            w.WriteEndObject();
            w.WriteStartObject("options");
            w.WriteString("loss", r.Options.Loss);
            w.WriteString("weight_loss", r.Options.ResolvedWeightLoss);
            w.WriteNumber("percentile", r.Options.Percentile);
            w.WriteNumber("activation_bits", r.Options.ActivationBits);
            w.WriteString("activation_type", r.Options.UnsignedActivations ? "uint" : "int");
            w.WriteBoolean("symmetric_activations", r.Options.SymmetricActivations);
            w.WriteNumber("weight_bits", r.Options.WeightBits);
            w.WriteBoolean("per_channel_weights", r.Options.PerChannelWeights);
            w.WriteBoolean("bias_correction", r.Options.BiasCorrection);
            w.WriteStartArray("exclude");
            foreach (var e in r.Options.Exclude) w.WriteStringValue(e);
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteStartObject("calibration");
            w.WriteString("source", r.CalibrationSource);
            w.WriteNumber("samples", r.CalibrationSamples);
            w.WriteNumber("skipped", r.CalibrationSkipped);
            w.WriteNumber("observed_tensors", r.ObservedTensors);
            w.WriteEndObject();
            w.WriteStartObject("rewrite");
            w.WriteNumber("folded_batchnorms", r.FoldedBatchNorms);
            w.WriteNumber("folded_activations", r.Rewrite.FoldedActivations);
            w.WriteNumber("qdq_pairs", r.Rewrite.QdqPairs);
            w.WriteNumber("quantized_weights", r.Rewrite.QuantizedWeights);
            w.WriteNumber("quantized_biases", r.Rewrite.QuantizedBiases);
            w.WriteNumber("corrected_biases", r.Rewrite.CorrectedBiases);
            w.WriteNumber("raised_weight_scales", r.Rewrite.RaisedWeightScales);
            w.WriteString("weight_storage", r.Rewrite.WeightStorage);
            w.WriteString("activation_storage", r.Rewrite.ActivationStorage);
            WriteCounts(w, "float_ops", r.FloatOps);
            WriteCounts(w, "onnxruntime_ops", r.OnnxRuntimeOps);
            w.WriteEndObject();
            w.WriteStartObject("evaluation");
            w.WriteString("source", r.EvaluationSource);
            w.WriteNumber("samples", r.Outputs.Samples);
            w.WriteBoolean("labelled", r.Outputs.Labelled);
            Number(w, "fp32_top1", r.Outputs.Fp32Top1);
            Number(w, "int8_top1", r.Outputs.Int8Top1);
            Number(w, "top1_drop", r.Outputs.Labelled ? r.Outputs.Top1Drop : double.NaN);
            Number(w, "fp32_top5", r.Outputs.Fp32Top5);
            Number(w, "int8_top5", r.Outputs.Int8Top5);
            Number(w, "top1_agreement", r.Outputs.Agreement);
            Number(w, "output_sqnr_db", r.Outputs.SqnrDb);
            Number(w, "output_cosine", r.Outputs.Cosine);
            w.WriteEndObject();
            w.WriteStartObject("latency");
            w.WriteNumber("batch", r.LatencyBatch);
            Number(w, "fp32_ms", r.Fp32LatencyMs);
            Number(w, "int8_ms", r.Int8LatencyMs);
            Number(w, "speedup", r.Fp32LatencyMs / r.Int8LatencyMs);
            w.WriteString("cpu", r.Cpu);
            w.WriteEndObject();
            w.WriteStartArray("layers");
            foreach (var l in r.Layers)
            {
                w.WriteStartObject();
                w.WriteString("tensor", l.Tensor);
                w.WriteString("producer", l.Producer);
                Number(w, "sqnr_db", l.SqnrDb);
                Number(w, "scale", l.Scale);
                w.WriteNumber("zero_point", l.ZeroPoint);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartObject("gate");
            if (r.MaxDrop is double m) w.WriteNumber("max_drop", m); else w.WriteNull("max_drop");
            Number(w, "value", r.GateValue);
            w.WriteBoolean("passed", r.GatePassed);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    public static string Markdown(QuantizationReport r)
    {
        var w = new StringBuilder();
        w.AppendLine($"## PtqTool: `{Path.GetFileName(r.InputModel)}` → `{Path.GetFileName(r.OutputModel)}`");
        w.AppendLine();
        w.AppendLine($"Loss **{r.Options.Loss}**, {Describe(r)}. Calibration: {r.CalibrationSource}, {r.CalibrationSamples} samples ({r.CalibrationSkipped} skipped).");
        w.AppendLine();
        w.AppendLine("| | FP32 | INT8 | change |");
        w.AppendLine("|---|---:|---:|---:|");
        foreach (var line in Rows(r)) w.AppendLine($"| {line.Label} | {line.Fp32} | {line.Int8} | {line.Change} |");
        w.AppendLine();
        if (r.MaxDrop is double m)
            w.AppendLine($"Gate: {(r.Outputs.Labelled ? "top-1 drop" : "100 − agreement")} {Format.F(r.GateValue)} pt vs max {Format.F(m)} pt: **{(r.GatePassed ? "passed" : "FAILED")}**.");
        w.AppendLine();
        w.AppendLine("| tensor | producer | SQNR (dB) | scale | zero point |");
        w.AppendLine("|---|---|---:|---:|---:|");
        foreach (var l in r.Layers) w.AppendLine($"| `{l.Tensor}` | {l.Producer} | {Format.F(l.SqnrDb, 1)} | {l.Scale:G4} | {l.ZeroPoint} |");
        w.AppendLine();
        w.AppendLine($"ONNX Runtime kernels: {string.Join(", ", r.OnnxRuntimeOps.Select(kv => $"{kv.Key} {kv.Value}"))}.");
        if (r.FloatOps.Count > 0) w.AppendLine($"Kept in float: {string.Join(", ", r.FloatOps.Select(kv => $"{kv.Key} {kv.Value}"))}.");
        return w.ToString();
    }

    public static string Console(QuantizationReport r, int worstLayers = 8)
    {
        var w = new StringBuilder();
        w.AppendLine($"{r.InputModel} -> {r.OutputModel}");
        w.AppendLine($"  loss {r.Options.Loss}; {Describe(r)}");
        w.AppendLine($"  calibration: {r.CalibrationSource}, {r.CalibrationSamples} samples ({r.CalibrationSkipped} skipped), {r.ObservedTensors} tensors observed");
        w.AppendLine($"  evaluation: {r.EvaluationSource}, {r.Outputs.Samples} samples");
        w.AppendLine();
        w.AppendLine($"  {"",-26}{"FP32",12}{"INT8",12}{"change",16}");
        foreach (var line in Rows(r)) w.AppendLine($"  {line.Label,-26}{line.Fp32,12}{line.Int8,12}{line.Change,16}");
        w.AppendLine();
        w.AppendLine($"  ONNX Runtime kernels: {string.Join(", ", r.OnnxRuntimeOps.Where(kv => kv.Key.StartsWith("QLinear", StringComparison.Ordinal) || kv.Key.StartsWith("QGemm", StringComparison.Ordinal) || kv.Key.Contains("Integer", StringComparison.Ordinal)).Select(kv => $"{kv.Key} {kv.Value}").DefaultIfEmpty("none fused"))}");
        if (r.FloatOps.Count > 0) w.AppendLine($"  kept in float: {string.Join(", ", r.FloatOps.Select(kv => $"{kv.Key} {kv.Value}"))}");
        w.AppendLine($"  worst layers (SQNR vs FP32, dB):");
        foreach (var l in r.Layers.Take(worstLayers)) w.AppendLine($"    {Format.F(l.SqnrDb, 1),6}  {l.Tensor}  ({l.Producer})");
        if (r.MaxDrop is double m)
            w.AppendLine($"  gate: {(r.Outputs.Labelled ? "top-1 drop" : "100 - agreement")} {Format.F(r.GateValue)} pt, max {Format.F(m)} pt: {(r.GatePassed ? "passed" : "FAILED")}");
        return w.ToString();
    }

    private static string Describe(QuantizationReport r) =>
        $"activations {r.Rewrite.ActivationStorage} {(r.Options.SymmetricActivations ? "symmetric" : "asymmetric")} per-tensor; " +
        $"weights {r.Rewrite.WeightStorage} symmetric {(r.Options.PerChannelWeights ? "per-channel" : "per-tensor")} ({r.Options.ResolvedWeightLoss})";

    private static IEnumerable<(string Label, string Fp32, string Int8, string Change)> Rows(QuantizationReport r)
    {
        var o = r.Outputs;
        if (o.Labelled)
        {
            yield return ("top-1 (%)", Format.F(o.Fp32Top1), Format.F(o.Int8Top1), Format.Signed(-o.Top1Drop));
            yield return ("top-5 (%)", Format.F(o.Fp32Top5), Format.F(o.Int8Top5), Format.Signed(o.Int8Top5 - o.Fp32Top5));
        }
        yield return ("top-1 agreement (%)", "", Format.F(o.Agreement), "");
        yield return ("output SQNR (dB)", "", Format.F(o.SqnrDb, 1), "");
        yield return ("output cosine", "", Format.F(o.Cosine, 5), "");
        yield return ("size", Format.Bytes(r.Fp32Bytes), Format.Bytes(r.Int8Bytes), $"{(double)r.Fp32Bytes / r.Int8Bytes:0.00}x smaller");
        yield return ($"latency (ms/batch {r.LatencyBatch})", Format.F(r.Fp32LatencyMs), Format.F(r.Int8LatencyMs), $"{r.Fp32LatencyMs / r.Int8LatencyMs:0.00}x faster");
    }

    private static void Number(Utf8JsonWriter w, string name, double value)
    {
        if (double.IsFinite(value)) w.WriteNumber(name, value);
        else w.WriteNull(name);
    }

    private static void WriteCounts(Utf8JsonWriter w, string name, IReadOnlyDictionary<string, int> counts)
    {
        w.WriteStartObject(name);
        foreach (var (k, v) in counts.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteNumber(k, v);
        w.WriteEndObject();
    }
}
