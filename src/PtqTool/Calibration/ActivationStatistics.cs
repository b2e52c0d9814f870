using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using PtqTool.Onnx;
using PtqTool.Scales;

namespace PtqTool.Calibration;

/// <summary>
/// Per-tensor histograms of one model's activations over some calibration samples. Saved as "ptq-stats/1" JSON
/// (docs/stats-format.md); statistics of shards of the same model merge exactly.
/// </summary>
public sealed class ActivationStatistics
{
    public const string Format = "ptq-stats/1";

    public string ModelSha256 { get; }
    public Dictionary<string, Histogram> Tensors { get; } = new(StringComparer.Ordinal);
    /// <summary>Per-channel means of the inputs of weighted ops (for bias correction).</summary>
    public Dictionary<string, ChannelMeans> Channels { get; } = new(StringComparer.Ordinal);
    public long Samples { get; set; }
    public long Skipped { get; set; }

    public ActivationStatistics(string modelSha256) => ModelSha256 = modelSha256;

    public static string Digest(string modelPath) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(modelPath)));

    public void Merge(ActivationStatistics other, string nameForErrors)
    {
        if (other.ModelSha256 != ModelSha256)
            throw new PtqException($"{nameForErrors}: statistics are of a different model (sha256 {other.ModelSha256[..12]}… vs {ModelSha256[..12]}…)");
        foreach (var (name, h) in other.Tensors)
        {
            if (Tensors.TryGetValue(name, out var mine)) mine.Merge(h);
            else Tensors[name] = h.Clone();
        }
        foreach (var (name, c) in other.Channels)
        {
            if (Channels.TryGetValue(name, out var mine)) mine.Merge(c);
            else Channels[name] = new ChannelMeans((double[])c.Sums.Clone(), c.Count);
        }
        Samples += other.Samples;
        Skipped += other.Skipped;
    }

    public void Save(string path)
    {
        AtomicFile.Write(path, stream =>
        {
            using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
            w.WriteStartObject();
            w.WriteString("format", Format);
            w.WriteString("model_sha256", ModelSha256);
            w.WriteNumber("samples", Samples);
            w.WriteNumber("skipped", Skipped);
            w.WriteStartObject("tensors");
            foreach (var (name, h) in Tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                w.WriteStartObject(name);
                w.WriteNumber("bins_per_side", h.BinsPerSide);
                w.WriteNumber("exponent", h.Exponent);
                w.WriteNumber("count", h.Count);
                w.WriteNumber("non_finite", h.NonFinite);
                w.WriteString("min", h.Count > 0 ? h.Min.ToString("R", CultureInfo.InvariantCulture) : "inf");
                w.WriteString("max", h.Count > 0 ? h.Max.ToString("R", CultureInfo.InvariantCulture) : "-inf");
                // Sparse: [bin, count] pairs of the non-empty bins.
                w.WriteStartArray("bins");
                var counts = h.Counts;
                for (int i = 0; i < counts.Length; i++)
                {
                    if (counts[i] == 0) continue;
                    w.WriteStartArray();
                    w.WriteNumberValue(i);
                    w.WriteNumberValue(counts[i]);
                    w.WriteEndArray();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteStartObject("channel_sums");
            foreach (var (name, c) in Channels.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                w.WriteStartObject(name);
                w.WriteNumber("count", c.Count);
                w.WriteStartArray("sums");
                foreach (double v in c.Sums) w.WriteNumberValue(v);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    public static ActivationStatistics Load(string path)
    {
        if (!File.Exists(path)) throw new PtqException($"{path}: file not found");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            if (!root.TryGetProperty("format", out var format) || format.GetString() != Format)
                throw new PtqException($"{path}: not a ptq statistics file (expected format \"{Format}\")");
            var stats = new ActivationStatistics(root.GetProperty("model_sha256").GetString()!)
            {
                Samples = root.GetProperty("samples").GetInt64(),
                Skipped = root.GetProperty("skipped").GetInt64(),
            };
            foreach (var t in root.GetProperty("tensors").EnumerateObject())
            {
                var v = t.Value;
                int perSide = v.GetProperty("bins_per_side").GetInt32();
                var counts = new long[2 * perSide];
                foreach (var pair in v.GetProperty("bins").EnumerateArray())
                {
                    int bin = pair[0].GetInt32();
                    if (bin < 0 || bin >= counts.Length) throw new PtqException($"{path}: tensor '{t.Name}' has bin {bin} out of range");
                    counts[bin] = pair[1].GetInt64();
                }
                stats.Tensors[t.Name] = Histogram.Restore(perSide, v.GetProperty("exponent").GetInt32(), v.GetProperty("count").GetInt64(),
                    v.GetProperty("non_finite").GetInt64(), ParseDouble(v.GetProperty("min").GetString()!), ParseDouble(v.GetProperty("max").GetString()!), counts);
            }
            if (root.TryGetProperty("channel_sums", out var channels))
                foreach (var c in channels.EnumerateObject())
                    stats.Channels[c.Name] = new ChannelMeans(c.Value.GetProperty("sums").EnumerateArray().Select(v => v.GetDouble()).ToArray(), c.Value.GetProperty("count").GetInt64());
            return stats;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new PtqException($"{path}: corrupt statistics file ({e.Message})", inner: e);
        }
    }

    private static double ParseDouble(string s) => s switch
    {
        "inf" => double.PositiveInfinity,
        "-inf" => double.NegativeInfinity,
        _ => double.Parse(s, CultureInfo.InvariantCulture),
    };
}
