using System.Globalization;
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

    /// <summary>
    /// Loads and merges shard files: each must be a different shard (another path to the same file, or a copy with the
    /// same content, would count its samples twice) and observe the same tensors (shards of one calibration setup).
    /// </summary>
    public static ActivationStatistics MergeShards(IReadOnlyList<string> paths)
    {
        if (paths.Count == 0) throw new PtqException("--stats: no files given");
        var digests = new Dictionary<string, string>(StringComparer.Ordinal);
        ActivationStatistics? merged = null;
        string first = paths[0];
        foreach (var path in paths)
        {
            foreach (var seen in digests.Values)
                if (FileIdentity.Same(seen, path)) throw new PtqException($"{path}: given twice (as {seen}); each shard counts once");
            var s = Load(path);
            string digest = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path)));
            if (digests.TryGetValue(digest, out var twin)) throw new PtqException($"{path}: has the same content as {twin}; each shard counts once");
            digests[digest] = path;
            if (merged is null) { merged = s; continue; }
            var missing = merged.Tensors.Keys.Except(s.Tensors.Keys).Concat(s.Tensors.Keys.Except(merged.Tensors.Keys)).Order(StringComparer.Ordinal).FirstOrDefault();
            if (missing is not null)
                throw new PtqException($"{path}: observes other tensors than {first} (e.g. '{missing}'): shards must come from the same calibration options");
            merged.Merge(s, path);
        }
        return merged!;
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

    /// <summary>Largest histogram exponent a float32 tensor can need (2^128 > float.MaxValue).</summary>
    public const int MaxExponent = 130;
    public const int MaxBinsPerSide = 1 << 16;

    /// <summary>Reads a statistics file, range-checking every field: a hand-edited or corrupt file is refused, never used.</summary>
    public static ActivationStatistics Load(string path)
    {
        if (!File.Exists(path)) throw new PtqException($"{path}: file not found");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new PtqException($"{path}: cannot read ({e.Message})", inner: e); }
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.String || format.GetString() != Format)
                throw new PtqException($"{path}: not a ptq statistics file (expected format \"{Format}\")");
            string sha = root.GetProperty("model_sha256").GetString() ?? "";
            if (sha.Length != 64 || !sha.All(Uri.IsHexDigit)) throw Corrupt(path, $"model_sha256 '{sha}' is not 64 hex digits");
            var stats = new ActivationStatistics(sha.ToLowerInvariant())
            {
                Samples = NonNegative(root.GetProperty("samples").GetInt64(), path, "samples"),
                Skipped = NonNegative(root.GetProperty("skipped").GetInt64(), path, "skipped"),
            };
            foreach (var t in root.GetProperty("tensors").EnumerateObject())
            {
                var v = t.Value;
                int perSide = v.GetProperty("bins_per_side").GetInt32();
                if (perSide < 2 || perSide > MaxBinsPerSide || (perSide & (perSide - 1)) != 0)
                    throw Corrupt(path, $"tensor '{t.Name}': bins_per_side {perSide} is not a power of two in 2..{MaxBinsPerSide}");
                int exponent = v.GetProperty("exponent").GetInt32();
                if (exponent < Histogram.MinExponent || exponent > MaxExponent)
                    throw Corrupt(path, $"tensor '{t.Name}': exponent {exponent} is outside {Histogram.MinExponent}..{MaxExponent}");
                long count = NonNegative(v.GetProperty("count").GetInt64(), path, $"tensor '{t.Name}' count");
                long nonFinite = NonNegative(v.GetProperty("non_finite").GetInt64(), path, $"tensor '{t.Name}' non_finite");
                double min = ParseDouble(v.GetProperty("min").GetString()!), max = ParseDouble(v.GetProperty("max").GetString()!);
                var counts = new long[2 * perSide];
                long total = 0;
                foreach (var pair in v.GetProperty("bins").EnumerateArray())
                {
                    if (pair.ValueKind != JsonValueKind.Array || pair.GetArrayLength() != 2)
                        throw Corrupt(path, $"tensor '{t.Name}': a bin entry is not a [bin, count] pair");
                    int bin = pair[0].GetInt32();
                    if (bin < 0 || bin >= counts.Length) throw Corrupt(path, $"tensor '{t.Name}' has bin {bin} out of range");
                    long c = NonNegative(pair[1].GetInt64(), path, $"tensor '{t.Name}' bin {bin}");
                    counts[bin] += c;
                    total = checked(total + c);
                }
                if (total != count) throw Corrupt(path, $"tensor '{t.Name}': bins hold {total} values, count says {count}");
                double half = Math.ScaleB(1.0, exponent);
                if (count > 0 && (!double.IsFinite(min) || !double.IsFinite(max) || min > max || Math.Max(Math.Abs(min), Math.Abs(max)) > half))
                    throw Corrupt(path, $"tensor '{t.Name}': min {min} / max {max} do not fit its range ±{half:G3}");
                stats.Tensors[t.Name] = Histogram.Restore(perSide, exponent, count, nonFinite, min, max, counts);
            }
            if (root.TryGetProperty("channel_sums", out var channels))
                foreach (var c in channels.EnumerateObject())
                {
                    var sums = c.Value.GetProperty("sums").EnumerateArray().Select(v => v.GetDouble()).ToArray();
                    if (sums.Any(v => !double.IsFinite(v))) throw Corrupt(path, $"channel sums of '{c.Name}' are not finite");
                    stats.Channels[c.Name] = new ChannelMeans(sums, NonNegative(c.Value.GetProperty("count").GetInt64(), path, $"channel count of '{c.Name}'"));
                }
            return stats;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or OverflowException or ArgumentException)
        {
            throw new PtqException($"{path}: corrupt statistics file ({e.Message})", inner: e);
        }
    }

    private static PtqException Corrupt(string path, string what) => new($"{path}: corrupt statistics file ({what})");

    private static long NonNegative(long v, string path, string what) => v >= 0 ? v : throw Corrupt(path, $"{what} is negative ({v})");

    private static double ParseDouble(string s) => s switch
    {
        "inf" => double.PositiveInfinity,
        "-inf" => double.NegativeInfinity,
        _ => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture),
    };
}
