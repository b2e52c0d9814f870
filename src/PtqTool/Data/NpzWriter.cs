using System.IO.Compression;

namespace PtqTool.Data;

/// <summary>Writes NumPy .npz archives (uncompressed, as numpy.savez does): one .npy entry per named array.</summary>
public static class NpzWriter
{
    /// <param name="arrays">Entry name (without .npy) to the array's complete .npy bytes (<see cref="NpyReader.Write(ReadOnlySpan{float}, ReadOnlySpan{int})"/>).</param>
    public static byte[] Write(IEnumerable<(string Name, byte[] Npy)> arrays)
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, npy) in arrays)
            {
                var entry = zip.CreateEntry(name + ".npy", CompressionLevel.NoCompression);
                using var s = entry.Open();
                s.Write(npy);
            }
        }
        return ms.ToArray();
    }
}
