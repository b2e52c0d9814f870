using System.Buffers.Binary;
using System.Text;

namespace PtqTool.Data;

/// <summary>Reads NumPy .npy files (format 1.0–3.0) of float32, float64, uint8, int8, int32 or int64, C order, as float32.</summary>
public static class NpyReader
{
    public static (float[] Data, int[] Shape) Read(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (IOException e) { throw new PtqException($"{path}: cannot read ({e.Message})", inner: e); }
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
            throw new PtqException($"{path}: not a .npy file (bad magic)");
        int major = bytes[6];
        int headerLength, headerStart;
        if (major == 1) { headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8)); headerStart = 10; }
        else { headerLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8)); headerStart = 12; }
        if (headerStart + headerLength > bytes.Length) throw new PtqException($"{path}: truncated .npy header");
        string header = Encoding.Latin1.GetString(bytes, headerStart, headerLength);
        string descr = Field(header, "descr", path).Trim('\'', '"');
        if (Field(header, "fortran_order", path).StartsWith("True", StringComparison.Ordinal))
            throw new PtqException($"{path}: Fortran-ordered arrays are not supported");
        string shapeText = Field(header, "shape", path).Trim('(', ')');
        int[] shape = shapeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        int count = 1;
        foreach (int d in shape) count *= d;
        var data = new float[count];
        var body = bytes.AsSpan(headerStart + headerLength);
        int size = descr[^1] - '0';
        if (descr[0] == '>') throw new PtqException($"{path}: big-endian arrays are not supported");
        if (body.Length < count * size) throw new PtqException($"{path}: truncated data ({body.Length} bytes for {count} values)");
        string kind = descr[1..];
        for (int i = 0; i < count; i++)
        {
            var s = body[(i * size)..];
            data[i] = kind switch
            {
                "f4" => BinaryPrimitives.ReadSingleLittleEndian(s),
                "f8" => (float)BinaryPrimitives.ReadDoubleLittleEndian(s),
                "u1" => s[0],
                "i1" => (sbyte)s[0],
                "i4" => BinaryPrimitives.ReadInt32LittleEndian(s),
                "i8" => BinaryPrimitives.ReadInt64LittleEndian(s),
                _ => throw new PtqException($"{path}: dtype '{descr}' is not supported"),
            };
        }
        return (data, shape);
    }

    /// <summary>Writes a float32 C-order .npy (format 1.0).</summary>
    public static byte[] Write(ReadOnlySpan<float> data, ReadOnlySpan<int> shape)
    {
        string dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape.ToArray());
        string header = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}";
        int total = 10 + header.Length + 1;
        int pad = (64 - total % 64) % 64;
        header = header + new string(' ', pad) + "\n";
        using var ms = new MemoryStream();
        ms.WriteByte(0x93);
        ms.Write(Encoding.ASCII.GetBytes("NUMPY"));
        ms.WriteByte(1);
        ms.WriteByte(0);
        Span<byte> len = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)header.Length);
        ms.Write(len);
        ms.Write(Encoding.ASCII.GetBytes(header));
        ms.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data));
        return ms.ToArray();
    }

    private static string Field(string header, string name, string path)
    {
        int i = header.IndexOf($"'{name}'", StringComparison.Ordinal);
        if (i < 0) throw new PtqException($"{path}: .npy header lacks '{name}'");
        int colon = header.IndexOf(':', i);
        int end = name == "shape" ? header.IndexOf(')', colon) + 1 : header.IndexOf(',', colon);
        return header[(colon + 1)..end].Trim();
    }
}
