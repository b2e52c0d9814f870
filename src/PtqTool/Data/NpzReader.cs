using System.IO.Compression;

namespace PtqTool.Data;

/// <summary>
/// Reads NumPy .npz archives (numpy.savez / savez_compressed): a zip of .npy arrays, each keyed by its entry name
/// without ".npy". One archive holds one sample or a batch of every model input, keyed by input name.
/// </summary>
public static class NpzReader
{
    /// <summary>Largest array read from one entry (1 GiB uncompressed): a corrupt or hostile archive cannot exhaust memory.</summary>
    public const long MaxEntryBytes = 1L << 30;

    public static Dictionary<string, NpyArray> Read(string path)
    {
        try
        {
            using var zip = ZipFile.OpenRead(path);
            var arrays = new Dictionary<string, NpyArray>(StringComparer.Ordinal);
            foreach (var entry in zip.Entries)
            {
                if (entry.FullName.EndsWith('/')) continue;
                if (!entry.FullName.EndsWith(".npy", StringComparison.Ordinal))
                    throw new PtqException($"{path}: entry '{entry.FullName}' is not a .npy array");
                if (entry.Length > MaxEntryBytes)
                    throw new PtqException($"{path}: entry '{entry.FullName}' is {entry.Length >> 20} MiB uncompressed (at most {MaxEntryBytes >> 20} MiB)");
                var bytes = new byte[entry.Length];
                using (var s = entry.Open()) s.ReadExactly(bytes);
                string key = entry.FullName[..^4];
                arrays[key] = NpyReader.Parse(bytes, $"{path}:{entry.FullName}");
            }
            if (arrays.Count == 0) throw new PtqException($"{path}: the archive holds no arrays");
            return arrays;
        }
        catch (InvalidDataException e)
        {
            throw new PtqException($"{path}: not a valid .npz (zip) archive ({e.Message})", inner: e);
        }
        catch (EndOfStreamException e)
        {
            throw new PtqException($"{path}: truncated .npz archive", inner: e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PtqException($"{path}: cannot read ({e.Message})", inner: e);
        }
    }
}
