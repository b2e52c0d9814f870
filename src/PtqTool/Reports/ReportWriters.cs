using System.Globalization;
using System.Text;
using System.Text.Json;
using PtqTool.Evaluation;
using PtqTool.Kernels;
using PtqTool.Onnx;

namespace PtqTool.Reports;

/// <summary>Renders a <see cref="QuantizationReport"/> as JSON, Markdown or a console table.</summary>
public static class ReportWriters
{
    public const string Schema = "ptq-report/2";

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
            w.WriteNumber("weight_bytes", r.WeightBytes);
            if (r.Upgrade is { } u)
            {
                w.WriteNumber("opset", u.From);
                w.WriteNumber("quantized_opset", u.To);
                WriteCounts(w, "opset_rewrites", u.Rewritten);
            }
            if (r.Normalization is { } nz) WriteCounts(w, "normalized", nz.Changes);
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
            w.WriteBoolean("equalize", r.Options.Equalize);
            w.WriteBoolean("fold_affine", r.Options.FoldAffine);
            w.WriteBoolean("output_bias_correction", r.Options.OutputBiasCorrection);
            if (r.Audio is not { } audio) w.WriteNull("audio");
            else
            {
                w.WriteStartObject("audio");
                if (audio.SampleRate is int rate) w.WriteNumber("sample_rate", rate); else w.WriteNull("sample_rate");
                w.WriteNumber("scale", audio.Scale);
                if (audio.Window is int window) w.WriteNumber("window", window); else w.WriteNull("window");
                if (r.AudioRateFound is int found) w.WriteNumber("files_rate", found); else w.WriteNull("files_rate");
                w.WriteEndObject();
            }
            w.WriteNumber("embedding_bits", r.Options.ResolvedEmbeddingBits);
            w.WriteString("rounding", r.Options.Rounding);
            w.WriteString("rounding_check", r.Options.RoundingCheck);
            w.WriteNumber("multipoint", r.Options.Multipoint);
            w.WriteString("target", KernelTargets.Name(r.Target.Target));
            w.WriteString("saturation_guard", SaturationGuards.Name(r.Target.Guard));
            w.WriteStartArray("exclude");
            foreach (var e in r.Options.Exclude) w.WriteStringValue(e);
            w.WriteEndArray();
            w.WriteEndObject();
            WriteMixedPrecision(w, r.MixedPrecision);
            WriteRounding(w, r.Rounding);
            WriteMultipoint(w, r.Multipoint);
            WriteFallback(w, r.Fallback);
            WriteRefinement(w, r.Refinement);
            WriteOutputBiasCorrection(w, r.OutputBiasCorrection);
            w.WriteStartObject("calibration");
            w.WriteString("source", r.CalibrationSource);
            w.WriteNumber("samples", r.CalibrationSamples);
            w.WriteNumber("skipped", r.CalibrationSkipped);
            w.WriteNumber("observed_tensors", r.ObservedTensors);
            w.WriteEndObject();
            w.WriteStartObject("rewrite");
            w.WriteNumber("folded_batchnorms", r.FoldedBatchNorms);
            w.WriteNumber("folded_affine_ops", r.FoldedAffineOps);
            w.WriteNumber("equalized_pairs", r.EqualizedPairs);
            w.WriteNumber("folded_activations", r.Rewrite.FoldedActivations);
            w.WriteNumber("qdq_pairs", r.Rewrite.QdqPairs);
            w.WriteNumber("quantized_weights", r.Rewrite.QuantizedWeights);
            w.WriteNumber("quantized_biases", r.Rewrite.QuantizedBiases);
            w.WriteNumber("corrected_biases", r.Rewrite.CorrectedBiases);
            w.WriteNumber("raised_weight_scales", r.Rewrite.RaisedWeightScales);
            w.WriteNumber("bounded_weight_pairs", r.Rewrite.BoundedWeightPairs);
            w.WriteNumber("quantized_tables", r.Rewrite.QuantizedTables);
            w.WriteNumber("matmul_nbits", r.Rewrite.MatMulNBits);
            if (r.Rewrite.Int4Rounding is { } rounding) w.WriteString("int4_rounding", rounding); else w.WriteNull("int4_rounding");
            w.WriteStartObject("weight_sqnr_db");
            foreach (var (k, v) in r.Rewrite.WeightSqnrDb ?? new Dictionary<string, double>()) Number(w, k, v);
            w.WriteEndObject();
            w.WriteString("weight_storage", r.Rewrite.WeightStorage);
            w.WriteString("activation_storage", r.Rewrite.ActivationStorage);
            WriteCounts(w, "float_ops", r.FloatOps);
            WriteCounts(w, "float_units", r.FloatUnits);
            w.WriteNumber("mask_nodes", r.MaskNodes);
            if (r.Smoothing is not { } sm) w.WriteNull("smoothquant");
            else
            {
                w.WriteStartObject("smoothquant");
                w.WriteNumber("alpha", sm.Alpha);
                w.WriteNumber("layernorms", sm.Sites);
                w.WriteNumber("samples", sm.Samples);
                w.WriteNumber("largest_factor", sm.LargestFactor);
                w.WriteNumber("smallest_factor", sm.SmallestFactor);
                w.WriteEndObject();
            }
            w.WriteNumber("float_joins", r.FloatJoins);
            WriteCounts(w, "onnxruntime_ops", r.OnnxRuntimeOps);
            w.WriteEndObject();
            w.WriteStartObject("target");
            w.WriteString("name", KernelTargets.Name(r.Target.Target));
            w.WriteString("saturation_guard", SaturationGuards.Name(r.Target.Guard));
            w.WriteString("measured_on", r.Target.MeasuredOn.Describe());
            w.WriteString("measured_kernels", KernelTargets.Name(r.Target.Native));
            w.WriteBoolean("measured_on_target", r.Target.OnTarget);
            w.WriteEndObject();
            w.WriteStartObject("evaluation");
            w.WriteString("source", r.EvaluationSource);
            w.WriteNumber("skipped", r.EvaluationSkipped);
            w.WriteString("kernels", $"this CPU's fused integer kernels ({KernelTargets.Name(r.Target.Native)})");
            WriteComparison(w, r.Outputs);
            w.WriteEndObject();
            w.WriteStartObject("evaluation_exact");
            w.WriteString("kernels", "exact QDQ semantics (ONNX Runtime with graph optimizations disabled)");
            WriteComparison(w, r.ExactOutputs);
            w.WriteEndObject();
            var gap = r.KernelGap;
            w.WriteStartObject("kernel_gap");
            Number(w, "top1", gap.Top1);
            Number(w, "output_sqnr_db", gap.SqnrDb);
            w.WriteString("cause", gap.Cause);
            w.WriteEndObject();
            WriteSaturation(w, "saturation", r.Saturation);
            if (!ReferenceEquals(r.Saturation, r.NativeSaturation)) WriteSaturation(w, "saturation_measuring_cpu", r.NativeSaturation);
            w.WriteStartObject("latency");
            w.WriteNumber("batch", r.LatencyBatch);
            Number(w, "fp32_ms", r.Fp32LatencyMs);
            Number(w, "int8_ms", r.Int8LatencyMs);
            Number(w, "speedup", r.Fp32LatencyMs / r.Int8LatencyMs);
            w.WriteString("cpu", r.Target.MeasuredOn.Describe());
            if (r.SlowdownReason is { } slow) w.WriteString("slower_because", slow); else w.WriteNull("slower_because");
            w.WriteEndObject();
            w.WriteStartObject("resources");
            w.WriteNumber("peak_rss_bytes", r.PeakRssBytes);
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
            w.WriteString("metric", Gate.Name(r.Gate.Metric));
            if (r.Gate.Threshold is double th) w.WriteNumber("threshold", th); else w.WriteNull("threshold");
            Number(w, "value", r.GateValue);
            w.WriteString("basis", r.GateBasis);
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
        if (RoundingText(r) is string rounding) w.AppendLine(char.ToUpperInvariant(rounding[0]) + rounding[1..] + ".").AppendLine();
        if (MultipointText(r) is string multipoint) w.AppendLine(char.ToUpperInvariant(multipoint[0]) + multipoint[1..] + ".").AppendLine();
        w.AppendLine($"Target **{KernelTargets.Name(r.Target.Target)}** (saturation guard {SaturationGuards.Name(r.Target.Guard)}); measured on {r.Target.MeasuredOn.Describe()}.");
        w.AppendLine();
        w.AppendLine("| | FP32 | INT8, this CPU's kernels | INT8, exact QDQ |");
        w.AppendLine("|---|---:|---:|---:|");
        foreach (var line in Rows(r)) w.AppendLine($"| {line.Label} | {line.Fp32} | {line.Int8} | {line.Exact} |");
        w.AppendLine();
        foreach (var note in Notes(r)) w.AppendLine($"- {note}");
        w.AppendLine();
        if (r.Gate.Threshold is double m)
            w.AppendLine($"Gate: {GateText(r, m)} on {r.GateBasis}: **{(r.GatePassed ? "passed" : "FAILED")}**.");
        w.AppendLine();
        w.AppendLine($"Saturation check ({KernelTargets.Name(r.Saturation.Target)}, {r.Saturation.Method}):");
        w.AppendLine();
        w.AppendLine("| node | kernel | activation codes | channels | can saturate | worst pair |");
        w.AppendLine("|---|---|---:|---:|---:|---:|");
        foreach (var l in r.Saturation.Layers)
            w.AppendLine($"| `{l.Node}` | {l.Kernel} | {l.ActivationType} [{l.ActivationCodes.Lo}, {l.ActivationCodes.Hi}] | {l.Verdict.Channels} | {l.Verdict.OverflowingChannels} | {PairText(l.Verdict)} |");
        w.AppendLine();
        w.AppendLine("| tensor | producer | SQNR (dB) | scale | zero point |");
        w.AppendLine("|---|---|---:|---:|---:|");
        foreach (var l in r.Layers) w.AppendLine($"| `{l.Tensor}` | {l.Producer} | {Format.F(l.SqnrDb, 1)} | {l.Scale:G4} | {l.ZeroPoint} |");
        w.AppendLine();
        w.AppendLine($"ONNX Runtime kernels: {string.Join(", ", r.OnnxRuntimeOps.Select(kv => $"{kv.Key} {kv.Value}"))}.");
        if (r.FloatOps.Count > 0) w.AppendLine($"Kept in float: {string.Join(", ", r.FloatOps.Select(kv => $"{kv.Key} {kv.Value}"))}.");
        if (r.FloatUnits.Count > 0) w.AppendLine($"Recognized and kept in float as wholes: {string.Join(", ", r.FloatUnits.Select(kv => $"{kv.Key} {kv.Value}"))}.");
        return w.ToString();
    }

    /// <summary>`mixed_precision`: null without --avg-bits; else the choice and every layer's Ω at each candidate width.</summary>
    private static void WriteMixedPrecision(System.Text.Json.Utf8JsonWriter w, Pipeline.MixedPrecisionStep.Result? m)
    {
        if (m is null) { w.WriteNull("mixed_precision"); return; }
        w.WriteStartObject("mixed_precision");
        w.WriteNumber("target_average_bits", m.Target);
        w.WriteNumber("average_bits", m.AverageBits);
        w.WriteNumber("sensitivity", m.Sensitivity);
        w.WriteNumber("samples", m.Samples);
        w.WriteNumber("frontier_points", m.FrontierPoints);
        w.WriteStartArray("layers");
        foreach (var l in m.Layers)
        {
            w.WriteStartObject();
            w.WriteString("weight", l.Weight);
            w.WriteNumber("parameters", l.Parameters);
            w.WriteNumber("bits", l.Bits);
            w.WriteStartObject("sensitivity_by_bits");
            for (int i = 0; i < l.Candidates.Count; i++) w.WriteNumber(l.Candidates[i].ToString(System.Globalization.CultureInfo.InvariantCulture), l.Sensitivity[i]);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>`refinement`: null when the scales were not refined on the output; else what the search did (docs/report-format.md).</summary>
    private static void WriteRefinement(System.Text.Json.Utf8JsonWriter w, Pipeline.RefinementSummary? r)
    {
        if (r is null) { w.WriteNull("refinement"); return; }
        w.WriteStartObject("refinement");
        w.WriteString("loss", r.Loss);
        w.WriteNumber("samples", r.Samples);
        w.WriteNumber("groups", r.Groups);
        w.WriteNumber("changed", r.Changed);
        w.WriteNumber("evaluations", r.Evaluations);
        w.WriteNumber("passes", r.Passes);
        Number(w, "work", r.Work);
        w.WriteBoolean("budget_reached", r.BudgetReached);
        Number(w, "loss_before", r.Before);
        Number(w, "loss_after", r.After);
        w.WriteBoolean("kept", r.Kept);
        Number(w, "seconds", r.Seconds);
        w.WriteEndObject();
    }

    private static void WriteOutputBiasCorrection(System.Text.Json.Utf8JsonWriter w, Pipeline.OutputBiasCorrectionSummary? r)
    {
        if (r is null) { w.WriteNull("output_bias_correction"); return; }
        w.WriteStartObject("output_bias_correction");
        w.WriteNumber("layers", r.Layers);
        w.WriteNumber("samples", r.Samples);
        w.WriteNumber("passes", r.Passes);
        w.WriteString("loss", r.Loss);
        Number(w, "loss_before", r.Before);
        Number(w, "loss_after", r.After);
        w.WriteBoolean("kept", r.Kept);
        if (r.RefinedLoss is double refined) Number(w, "refined_loss", refined); else w.WriteNull("refined_loss");
        if (r.UnrefinedLoss is double unrefined) Number(w, "unrefined_loss", unrefined); else w.WriteNull("unrefined_loss");
        if (r.ComparedOn is { } on) w.WriteString("compared_on", on); else w.WriteNull("compared_on");
        if (r.HeldOutSamples is int heldOut) w.WriteNumber("held_out_samples", heldOut); else w.WriteNull("held_out_samples");
        if (r.RefinedHeldOutLoss is double rh) Number(w, "refined_held_out_loss", rh); else w.WriteNull("refined_held_out_loss");
        if (r.UnrefinedHeldOutLoss is double uh) Number(w, "unrefined_held_out_loss", uh); else w.WriteNull("unrefined_held_out_loss");
        Number(w, "seconds", r.Seconds);
        w.WriteEndObject();
    }

    private static void WriteRounding(System.Text.Json.Utf8JsonWriter w, Pipeline.RoundingStep.Result? r)
    {
        if (r is null) { w.WriteNull("rounding"); return; }
        w.WriteStartObject("rounding");
        w.WriteString("method", r.Method);
        w.WriteString("target", r.Target);
        w.WriteNumber("iterations", r.Iterations);
        w.WriteNumber("samples", r.Samples);
        w.WriteNumber("seconds", r.Seconds);
        w.WriteStartArray("layers");
        foreach (var l in r.Layers)
        {
            w.WriteStartObject();
            w.WriteString("weight", l.Weight);
            w.WriteString("op", l.Op);
            w.WriteNumber("rows", l.Rows);
            w.WriteNumber("inputs_per_row", l.K);
            w.WriteNumber("nearest_error", l.NearestError);
            w.WriteNumber("error", l.Error);
            w.WriteNumber("changed_codes", l.Changed);
            w.WriteNumber("weights", l.Weights);
            w.WriteNumber("restored_pairs", l.RestoredPairs);
            w.WriteNumber("seconds", l.Seconds);
            if (l.Block is int b) w.WriteNumber("block", b); else w.WriteNull("block");
            if (l.CheckLoss is double c) w.WriteNumber("check_loss", c); else w.WriteNull("check_loss");
            w.WriteBoolean("reverted", l.Reverted);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        if (r.Blocks is null) w.WriteNull("blocks");
        else
        {
            w.WriteStartArray("blocks");
            foreach (var b in r.Blocks)
            {
                w.WriteStartObject();
                w.WriteNumber("index", b.Index);
                w.WriteString("input", b.Input);
                w.WriteString("output", b.Output);
                w.WriteNumber("layers", b.Layers);
                w.WriteString("method", b.Method);
                w.WriteNumber("nearest_error", b.NearestError);
                w.WriteNumber("adaround_error", b.LayerwiseError);
                w.WriteNumber("error", b.Error);
                w.WriteNumber("seconds", b.Seconds);
                w.WriteString("note", b.Reason);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        if (r.OutputCheck is not { } check) w.WriteNull("output_check");
        else
        {
            w.WriteStartObject("output_check");
            w.WriteNumber("adaround_error", check.AdaRoundError);
            w.WriteNumber("brecq_error", check.BrecqError);
            w.WriteString("kept", check.Kept);
            w.WriteNumber("samples", check.Samples);
            w.WriteEndObject();
        }
        if (r.Check is not { } layerCheck) w.WriteNull("check");
        else
        {
            w.WriteStartObject("check");
            w.WriteString("loss", layerCheck.Loss);
            w.WriteNumber("samples", layerCheck.Samples);
            w.WriteString("compared_on", layerCheck.ComparedOn);
            w.WriteNumber("nearest_loss", layerCheck.NearestLoss);
            w.WriteNumber("checked_loss", layerCheck.CheckedLoss);
            w.WriteString("kept", layerCheck.Kept);
            w.WriteNumber("final_loss", layerCheck.FinalLoss);
            w.WriteNumber("reverted", layerCheck.Reverted);
            w.WriteEndObject();
        }
        w.WriteStartArray("kept_nearest");
        foreach (var k in r.Kept) w.WriteStringValue(k);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>One line on learned rounding, or null with nearest rounding.</summary>
    public static string? RoundingText(QuantizationReport r) => r.Rounding is not { } ro ? null :
        $"rounding {ro.Method} (fit to the {ro.Target} {(ro.Blocks is null ? "layer" : "block")} outputs, {ro.Iterations} iterations, {ro.Samples} samples): "
        + (ro.Blocks is { } blocks ? $"{blocks.Count(b => b.Method == "brecq")} block(s) jointly, {blocks.Count(b => b.Method != "brecq")} layer by layer, " : "")
        + (ro.OutputCheck is { } check ? $"kept {check.Kept} (model output error on {check.Samples} held-out samples {Format.F(check.BrecqError, 4)} with blocks vs {Format.F(check.AdaRoundError, 4)} per layer), " : "")
        + $"{ro.Layers.Count} layer(s) in {Format.F(ro.Seconds, 1)} s, "
        + $"{(ro.Blocks is null ? "layer" : "block")} output error {Format.F(100 * ro.ErrorRatio, 1)} % of nearest rounding's, "
        + $"{ro.Layers.Where(l => !l.Reverted).Sum(l => l.Changed)} of {ro.Layers.Sum(l => l.Weights)} codes changed{(ro.Kept.Count > 0 ? $"; {ro.Kept.Count} weight(s) kept nearest" : "")}"
        + (ro.Check is { } c ? $"; check: kept {c.Kept}, {c.Reverted} layer(s) at nearest codes, model output {c.Loss} on {c.Samples} {(c.ComparedOn == "held_out" ? "held-out" : "fitted")} samples {c.NearestLoss:G4} (nearest) -> {c.FinalLoss:G4}" : "");

    /// <summary>`multipoint`: null without --multipoint; else the budget, the MACs and what each layer got.</summary>
    private static void WriteMultipoint(System.Text.Json.Utf8JsonWriter w, Pipeline.MultipointStep.Result? m)
    {
        if (m is null) { w.WriteNull("multipoint"); return; }
        w.WriteStartObject("multipoint");
        w.WriteNumber("budget", m.Budget);
        w.WriteNumber("model_macs", m.ModelMacs);
        w.WriteNumber("extra_macs", m.ExtraMacs);
        w.WriteNumber("extra_fraction", m.ExtraFraction);
        w.WriteNumber("samples", m.Samples);
        w.WriteNumber("seconds", m.Seconds);
        w.WriteStartArray("layers");
        foreach (var l in m.Layers)
        {
            w.WriteStartObject();
            w.WriteString("weight", l.Weight);
            w.WriteString("op", l.Op);
            w.WriteString("form", l.Form);
            w.WriteNumber("rows", l.Rows);
            w.WriteNumber("term_rows", l.TermRows);
            w.WriteNumber("macs", l.Macs);
            w.WriteNumber("extra_macs", l.ExtraMacs);
            w.WriteNumber("one_term_error", l.OneTermError);
            w.WriteNumber("error", l.Error);
            w.WriteNumber("output_energy", l.Energy);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("kept_one_term");
        foreach (var k in m.Kept) w.WriteStringValue(k);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>One line on multipoint weights, or null without them.</summary>
    public static string? MultipointText(QuantizationReport r) => r.Multipoint is not { } m ? null :
        $"multipoint weights (budget {Format.F(100 * m.Budget, 1)} % of {m.ModelMacs:N0} MACs per sample): second terms on {m.Layers.Sum(l => l.TermRows)} of {m.Layers.Sum(l => l.Rows)} output channels "
        + $"in {m.Layers.Count(l => l.TermRows > 0)} layer(s), +{Format.F(100 * m.ExtraFraction, 1)} % MACs, layer output error {Format.F(100 * m.Layers.Sum(l => l.Error) / Math.Max(1e-30, m.Layers.Sum(l => l.OneTermError)), 1)} % of one term's"
        + $"{(m.Kept.Count > 0 ? $"; {m.Kept.Count} weight(s) kept one term" : "")}";

    /// <summary>`auto_fallback`: null without --auto-fallback; else the gate metric, the final bits per tensor and every measured step.</summary>
    private static void WriteFallback(System.Text.Json.Utf8JsonWriter w, Pipeline.FallbackJob.Result? f)
    {
        if (f is null) { w.WriteNull("auto_fallback"); return; }
        w.WriteStartObject("auto_fallback");
        w.WriteString("metric", f.Metric);
        w.WriteStartObject("weight_bits");
        foreach (var (name, bits) in f.Options.LayerWeightBits.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteNumber(name, bits);
        w.WriteEndObject();
        w.WriteStartArray("steps");
        foreach (var s in f.Steps)
        {
            w.WriteStartObject();
            if (s.Weight is null) w.WriteNull("raised"); else w.WriteString("raised", s.Weight);
            w.WriteNumber("from_bits", s.FromBits);
            w.WriteNumber("to_bits", s.ToBits);
            w.WriteNumber("gate_value", s.GateValue);
            w.WriteBoolean("passed", s.Passed);
            if (s.KeptFloat is null) w.WriteNull("kept_float"); else w.WriteString("kept_float", s.KeptFloat);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("kept_float");
        foreach (var n in f.KeptFloat) w.WriteStringValue(n);
        w.WriteEndArray();
        w.WriteStartArray("ranking");
        foreach (var c in f.Ranking)
        {
            w.WriteStartObject();
            w.WriteString("node", c.Node);
            w.WriteString("op", c.OpType);
            w.WriteNumber("gate_value_alone_float", c.GateValue);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    public static string Console(QuantizationReport r, int worstLayers = 8)
    {
        var w = new StringBuilder();
        w.AppendLine($"{r.InputModel} -> {r.OutputModel}");
        w.AppendLine($"  loss {r.Options.Loss}; {Describe(r)}");
        w.AppendLine($"  target {KernelTargets.Name(r.Target.Target)} (saturation guard {SaturationGuards.Name(r.Target.Guard)}); measured on {r.Target.MeasuredOn.Describe()}");
        if (r.Upgrade is { Upgraded: true } up) w.AppendLine($"  model upgraded: {up}");
        if (r.Normalization is { Changes.Count: > 0 } nz) w.AppendLine($"  graph normalized: {nz}");
        if (r.MixedPrecision is { } mp)
            w.AppendLine($"  mixed precision (--avg-bits {Format.F(mp.Target)}): {Format.F(mp.AverageBits)} average weight bits, "
                + string.Join(", ", mp.Layers.GroupBy(l => l.Bits).OrderByDescending(g => g.Key).Select(g => $"{g.Count()} layer(s) at {g.Key}"))
                + $"; Σ Ω {mp.Sensitivity:G3} on {mp.Samples} samples (optimum of {mp.FrontierPoints} Pareto points)");
        if (RoundingText(r) is string rounding) w.AppendLine($"  {rounding}");
        if (MultipointText(r) is string multipoint) w.AppendLine($"  {multipoint}");
        if (r.Fallback is { } fb)
        {
            var raised = fb.Steps.Where(st => st.Weight is not null).ToList();
            var floats = fb.Steps.Where(st => st.KeptFloat is not null).ToList();
            w.AppendLine($"  auto-fallback ({fb.Metric}): {fb.Steps.Count} measurement(s), {raised.Count} raise(s){(raised.Count > 0 ? ": " + string.Join(", ", raised.Select(st => $"{st.Weight} {st.FromBits}→{st.ToBits} bits ({Format.F(st.GateValue)})")) : "")}"
                + (fb.Ranking.Count > 0 ? $"; {floats.Count} node(s) kept in float, ranked by leave-one-out on --eval ({fb.Ranking.Count} measured){(floats.Count > 0 ? ": " + string.Join(", ", floats.Select(st => $"{st.KeptFloat} ({Format.F(st.GateValue)})")) : "")}" : "")
                + (fb.Steps[^1].Passed ? "" : fb.Ranking.Count > 0 ? "; the gate still fails with every layer at its widest and every node that recovered anything in float" : "; the gate still fails with every layer at its widest"));
        }
        w.AppendLine($"  calibration: {r.CalibrationSource}, {r.CalibrationSamples} samples ({r.CalibrationSkipped} skipped), {r.ObservedTensors} tensors observed");
        w.AppendLine($"  evaluation: {r.EvaluationSource}, {r.Outputs.Samples} samples{(r.EvaluationSkipped > 0 ? $" ({r.EvaluationSkipped} unreadable, skipped)" : "")}");
        w.AppendLine();
        w.AppendLine($"  {"",-24}{"FP32",12}{"INT8 this CPU",27}{"INT8 exact QDQ",18}");
        foreach (var line in Rows(r)) w.AppendLine($"  {line.Label,-24}{line.Fp32,12}{line.Int8,27}{line.Exact,18}");
        w.AppendLine();
        foreach (var note in Notes(r)) w.AppendLine($"  {note}");
        w.AppendLine($"  ONNX Runtime kernels: {string.Join(", ", r.OnnxRuntimeOps.Where(kv => kv.Key.StartsWith("QLinear", StringComparison.Ordinal) || kv.Key.StartsWith("QGemm", StringComparison.Ordinal) || kv.Key.Contains("Integer", StringComparison.Ordinal)).Select(kv => $"{kv.Key} {kv.Value}").DefaultIfEmpty("none fused"))}");
        if (r.FloatOps.Count > 0) w.AppendLine($"  kept in float: {string.Join(", ", r.FloatOps.Select(kv => $"{kv.Key} {kv.Value}"))}");
        if (r.FloatUnits.Count > 0) w.AppendLine($"  recognized, kept in float as wholes: {string.Join(", ", r.FloatUnits.Select(kv => $"{kv.Key} {kv.Value}"))}");
        if (r.MaskNodes + r.FloatJoins > 0) w.AppendLine($"  kept in float by the plan: {r.MaskNodes} on attention-mask paths, {r.FloatJoins} Add/Mul read only by float ops (residual streams)");
        if (r.Outputs.PooledBy is string mask) w.AppendLine($"  compared: sentence embeddings (first output mean-pooled over '{mask}'); pair-similarity Spearman over {Math.Min(r.Outputs.Samples, PairRanking.MaxSamples)} sentences");
        w.AppendLine($"  worst layers (SQNR vs FP32, dB):");
        foreach (var l in r.Layers.Take(worstLayers)) w.AppendLine($"    {Format.F(l.SqnrDb, 1),6}  {l.Tensor}  ({l.Producer})");
        if (r.Gate.Threshold is double m)
            w.AppendLine($"  gate: {GateText(r, m)}, on {r.GateBasis}: {(r.GatePassed ? "passed" : "FAILED")}");
        return w.ToString();
    }

    /// <summary>`ptq check`'s table: one row per integer kernel, then the verdict.</summary>
    public static string SaturationText(SaturationReport s, string model, string? recordedTarget)
    {
        var w = new StringBuilder();
        w.AppendLine($"{model}: saturation check for {KernelTargets.Name(s.Target)}{(recordedTarget is null ? "" : $" (quantized by ptq for {recordedTarget})")}");
        w.AppendLine($"  method: {s.Method}");
        if (s.Layers.Count == 0)
        {
            w.AppendLine("  ONNX Runtime builds no integer kernel from this model: nothing to check");
            return w.ToString();
        }
        int width = Math.Min(60, s.Layers.Max(l => l.Node.Length));
        w.AppendLine($"  {"node".PadRight(width)}  {"kernel",-14}{"activation codes",-22}{"channels",9}{"saturate",10}  worst pair");
        foreach (var l in s.Layers)
        {
            string node = l.Node.Length > width ? "…" + l.Node[^(width - 1)..] : l.Node.PadRight(width);
            w.AppendLine($"  {node}  {l.Kernel,-14}{$"{l.ActivationType} [{l.ActivationCodes.Lo}, {l.ActivationCodes.Hi}]",-22}{l.Verdict.Channels,9}{l.Verdict.OverflowingChannels,10}  {PairText(l.Verdict)}");
        }
        w.AppendLine($"  {s.Summary}");
        return w.ToString();
    }

    /// <summary>"top-1 drop 0.20 pt (max 1.00)", "output SQNR 31.2 dB (min 25.0)".</summary>
    public static string GateText(QuantizationReport r, double threshold) =>
        $"{r.Gate.Describe()} {Format.F(r.GateValue, r.Gate.Metric == GateMetric.Cosine ? 5 : r.Gate.Metric == GateMetric.Sqnr ? 1 : 2)} {r.Gate.Unit}".TrimEnd()
        + $" ({(r.Gate.Metric is GateMetric.Top1 or GateMetric.Agreement ? "max" : "min")} {Format.F(threshold, r.Gate.Metric == GateMetric.Cosine ? 5 : 2)})";

    /// <summary>What the reader must know to trust the numbers: the saturation verdicts, where the accuracy holds, the kernel gap.</summary>
    private static IEnumerable<string> Notes(QuantizationReport r)
    {
        yield return $"saturation check: {r.Saturation.Summary} ({r.Saturation.Method})";
        if (!r.Target.OnTarget)
        {
            yield return $"this CPU runs {KernelTargets.Name(r.Target.Native)} kernels, not {KernelTargets.Name(r.Target.Target)}: its INT8 accuracy holds for this machine; "
                + (r.Saturation.CanSaturate
                    ? $"the target's kernels can saturate, so no accuracy measured here holds for {KernelTargets.Name(r.Target.Target)}"
                    : $"{KernelTargets.Name(r.Target.Target)} reproduces the exact QDQ column, since none of its kernels can saturate");
            if (r.NativeSaturation.CanSaturate) yield return $"on this CPU: {r.NativeSaturation.Summary}";
        }
        if (r.SlowdownReason is { } slow) yield return slow;
        var gap = r.KernelGap;
        if (gap.Cause.StartsWith("none", StringComparison.Ordinal)) yield break;
        string points = r.Outputs.Labelled || r.Outputs.ClassScores ? $"{Format.Signed(gap.Top1)} pt {(r.Outputs.Labelled ? "top-1" : "agreement")}, " : "";
        yield return $"gap between this CPU's kernels and exact QDQ: {points}{Format.Signed(gap.SqnrDb, 1)} dB SQNR; cause: {gap.Cause}";
    }

    private static string PairText(LayerSaturation v) =>
        !v.PairsInKernel ? "no 16-bit pairs" : $"{v.WorstLow}..{v.WorstHigh}{(v.CanSaturate ? $" (over by {v.WorstExcess})" : "")}";

    private static string Describe(QuantizationReport r) =>
        $"activations {r.Rewrite.ActivationStorage} {(r.Options.SymmetricActivations ? "symmetric" : "asymmetric")} per-tensor; " +
        $"weights {r.Rewrite.WeightStorage} symmetric {(r.Options.PerChannelWeights ? "per-channel" : "per-tensor")} ({r.Options.ResolvedWeightLoss})"
        + (r.Rewrite.BoundedWeightPairs > 0 ? $", {r.Rewrite.BoundedWeightPairs} weight pairs bounded for 16-bit kernels" : "");

    private static IEnumerable<(string Label, string Fp32, string Int8, string Exact)> Rows(QuantizationReport r)
    {
        var o = r.Outputs;
        var e = r.ExactOutputs;
        if (o.Labelled)
        {
            yield return ("top-1 (%)", Format.F(o.Fp32Top1), $"{Format.F(o.Int8Top1)} ({Format.Signed(-o.Top1Drop)})", $"{Format.F(e.Int8Top1)} ({Format.Signed(-e.Top1Drop)})");
            yield return ("top-5 (%)", Format.F(o.Fp32Top5), $"{Format.F(o.Int8Top5)} ({Format.Signed(o.Int8Top5 - o.Fp32Top5)})", $"{Format.F(e.Int8Top5)} ({Format.Signed(e.Int8Top5 - e.Fp32Top5)})");
        }
        if (o.ClassScores) yield return ("top-1 agreement (%)", "", Format.F(o.Agreement), Format.F(e.Agreement));
        string what = o.PooledBy is null ? "output" : "sentence";
        yield return ($"{what} SQNR (dB)", "", Format.F(o.SqnrDb, 1), Format.F(e.SqnrDb, 1));
        yield return ($"{what} cosine", "", Format.F(o.Cosine, 5), Format.F(e.Cosine, 5));
        if (!double.IsNaN(o.PairSpearman)) yield return ("pair-similarity Spearman", "", Format.F(o.PairSpearman, 5), Format.F(e.PairSpearman, 5));
        yield return ("size", Format.Bytes(r.Fp32Bytes), $"{Format.Bytes(r.Int8Bytes)} ({(double)r.Fp32Bytes / r.Int8Bytes:0.00}x smaller)", "");
        yield return ($"latency (ms/batch {r.LatencyBatch})", Format.F(r.Fp32LatencyMs), $"{Format.F(r.Int8LatencyMs)} ({r.Fp32LatencyMs / r.Int8LatencyMs:0.00}x faster)", "");
    }

    private static void WriteComparison(Utf8JsonWriter w, OutputComparison o)
    {
        w.WriteNumber("samples", o.Samples);
        w.WriteBoolean("labelled", o.Labelled);
        Number(w, "fp32_top1", o.Fp32Top1);
        Number(w, "int8_top1", o.Int8Top1);
        Number(w, "top1_drop", o.Labelled ? o.Top1Drop : double.NaN);
        Number(w, "fp32_top5", o.Fp32Top5);
        Number(w, "int8_top5", o.Int8Top5);
        Number(w, "top1_agreement", o.Agreement);
        w.WriteBoolean("class_scores", o.ClassScores);
        Number(w, "output_sqnr_db", o.SqnrDb);
        Number(w, "output_cosine", o.Cosine);
        if (o.PooledBy is null) w.WriteNull("pooled_by"); else w.WriteString("pooled_by", o.PooledBy);
        Number(w, "pair_similarity_spearman", o.PairSpearman);
    }

    private static void WriteSaturation(Utf8JsonWriter w, string name, SaturationReport s)
    {
        w.WriteStartObject(name);
        w.WriteString("target", KernelTargets.Name(s.Target));
        w.WriteString("method", s.Method);
        w.WriteBoolean("can_saturate", s.CanSaturate);
        w.WriteNumber("saturating_layers", s.SaturatingLayers);
        w.WriteNumber("saturating_channels", s.SaturatingChannels);
        w.WriteStartArray("layers");
        foreach (var l in s.Layers)
        {
            w.WriteStartObject();
            w.WriteString("node", l.Node);
            w.WriteString("kernel", l.Kernel);
            w.WriteString("weight_type", l.WeightType);
            w.WriteString("activation_type", l.ActivationType);
            w.WriteStartArray("activation_codes");
            w.WriteNumberValue(l.ActivationCodes.Lo);
            w.WriteNumberValue(l.ActivationCodes.Hi);
            w.WriteEndArray();
            w.WriteBoolean("pairs_in_int16", l.Verdict.PairsInKernel);
            w.WriteNumber("channels", l.Verdict.Channels);
            w.WriteNumber("saturating_channels", l.Verdict.OverflowingChannels);
            w.WriteNumber("worst_pair_high", l.Verdict.WorstHigh);
            w.WriteNumber("worst_pair_low", l.Verdict.WorstLow);
            w.WriteNumber("worst_excess", l.Verdict.WorstExcess);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
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
