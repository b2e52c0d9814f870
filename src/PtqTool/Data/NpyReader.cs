using System.Buffers.Binary;
using System.Text;

namespace PtqTool.Data;

/// <summary>A NumPy array read as float32, with its dtype kind ("f4", "i8", "b1", …) so callers can check it against a model input.</summary>
public sealed record NpyArray(float[] Data, int[] Shape, string Kind)
{
    /// <summary>Integer or boolean dtypes (what int64/int32/bool model inputs take).</summary>
    public bool IsInteger => Kind[0] is 'i' or 'u' or 'b';

    /// <summary>NumPy's name of the dtype, for messages.</summary>
    public string DtypeName => Kind switch
    {
        "b1" => "bool",
        _ => (Kind[0] switch { 'f' => "float", 'i' => "int", _ => "uint" }) + (8 * (Kind[1] - '0')).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}

/// <summary>
/// Reads NumPy .npy files (format 1.0–3.0) of float16/32/64, int8/16/32/64, uint8/16/32/64 or bool, C order, as
/// float32. Integers beyond ±2^24 are refused: float32 would not hold them exactly.
/// </summary>
public static class NpyReader
{
    private static readonly Dictionary<string, int> Sizes = new()
    {
        ["f2"] = 2, ["f4"] = 4, ["f8"] = 8, ["u1"] = 1, ["i1"] = 1, ["b1"] = 1, ["i2"] = 2, ["u2"] = 2, ["i4"] = 4, ["u4"] = 4, ["i8"] = 8, ["u8"] = 8,
    };

    private const string Supported = "float16/32/64, int8/16/32/64, uint8/16/32/64, bool";

    /// <summary>Reads a .npy; the header (dtype, order, shape) is checked against the file's size before any data is allocated.</summary>
    public static (float[] Data, int[] Shape) Read(string path)
    {
        var a = ReadArray(path);
        return (a.Data, a.Shape);
    }

    public static NpyArray ReadArray(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new PtqException($"{path}: cannot read ({e.Message})", inner: e); }
        return Parse(bytes, path);
    }

    /// <param name="path">The file (or "archive.npz:entry.npy") named in errors.</param>
    public static NpyArray Parse(byte[] bytes, string path)
    {
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
            throw new PtqException($"{path}: not a .npy file (bad magic)");
        int major = bytes[6];
        if (major is < 1 or > 3) throw new PtqException($"{path}: .npy format version {major} is not supported");
        long headerLength;
        int headerStart;
        if (major == 1) { headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8)); headerStart = 10; }
        else
        {
            if (bytes.Length < 12) throw new PtqException($"{path}: truncated .npy header");
            headerLength = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8));
            headerStart = 12;
        }
        if (headerStart + headerLength > bytes.Length) throw new PtqException($"{path}: truncated .npy header");
        string header = Encoding.Latin1.GetString(bytes, headerStart, (int)headerLength);
        string descr = Field(header, "descr", path).Trim().Trim('\'', '"');
        if (Field(header, "fortran_order", path).StartsWith("True", StringComparison.Ordinal))
            throw new PtqException($"{path}: Fortran-ordered arrays are not supported");
        if (descr.Length < 3 || descr[0] is not ('<' or '|' or '=' or '>'))
            throw new PtqException($"{path}: dtype '{descr}' is not supported ({Supported})");
        if (descr[0] == '>' && descr[1..] is not ("u1" or "i1" or "b1")) throw new PtqException($"{path}: big-endian arrays are not supported");
        string kind = descr[1..];
        if (!Sizes.TryGetValue(kind, out int size)) throw new PtqException($"{path}: dtype '{descr}' is not supported ({Supported})");
        string shapeText = Field(header, "shape", path).Trim().TrimStart('(').TrimEnd(')');
        var shape = new List<int>();
        long count = 1;
        foreach (var part in shapeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int d))
                throw new PtqException($"{path}: shape ({shapeText}) is not a tuple of non-negative integers");
            shape.Add(d);
            count = d == 0 ? 0 : count > long.MaxValue / d ? long.MaxValue : count * d;
        }
        long bodyLength = bytes.Length - headerStart - headerLength;
        if (count > bodyLength / size)
            throw new PtqException($"{path}: shape ({shapeText}) needs {(count == long.MaxValue ? "too many" : (count * size).ToString(System.Globalization.CultureInfo.InvariantCulture))} bytes, the file holds {bodyLength}");
        var data = new float[count];
        var body = bytes.AsSpan((int)(headerStart + headerLength));
        for (int i = 0; i < count; i++)
        {
            var v = body[(i * size)..];
            double x = kind switch
            {
                "f2" => (double)BinaryPrimitives.ReadHalfLittleEndian(v),
                "f4" => BinaryPrimitives.ReadSingleLittleEndian(v),
                "f8" => BinaryPrimitives.ReadDoubleLittleEndian(v),
                "u1" or "b1" => v[0],
                "i1" => (sbyte)v[0],
                "i2" => BinaryPrimitives.ReadInt16LittleEndian(v),
                "u2" => BinaryPrimitives.ReadUInt16LittleEndian(v),
                "i4" => BinaryPrimitives.ReadInt32LittleEndian(v),
                "u4" => BinaryPrimitives.ReadUInt32LittleEndian(v),
                "i8" => BinaryPrimitives.ReadInt64LittleEndian(v),
                _ => BinaryPrimitives.ReadUInt64LittleEndian(v),
            };
            if (kind[0] is 'i' or 'u' && Math.Abs(x) > Onnx.ModelFeed.ExactIntegerLimit)
                throw new PtqException($"{path}: element {i} is {x}, beyond ±2^24 (ptq holds inputs as float32, exact only to there)");
            data[i] = (float)x;
        }
        return new NpyArray(data, shape.ToArray(), kind);
    }

    /// <summary>Writes a float32 C-order .npy (format 1.0).</summary>
    public static byte[] Write(ReadOnlySpan<float> data, ReadOnlySpan<int> shape) => Write("<f4", System.Runtime.InteropServices.MemoryMarshal.AsBytes(data), shape);

    /// <summary>Writes an int64 C-order .npy (format 1.0): token ids, masks.</summary>
    public static byte[] Write(ReadOnlySpan<long> data, ReadOnlySpan<int> shape) => Write("<i8", System.Runtime.InteropServices.MemoryMarshal.AsBytes(data), shape);

    /// <summary>Writes a C-order .npy (format 1.0) of dtype <paramref name="descr"/> from little-endian element bytes.</summary>
    public static byte[] Write(string descr, ReadOnlySpan<byte> data, ReadOnlySpan<int> shape)
    {
        string dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape.ToArray());
        string header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}";
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
        ms.Write(data);
        return ms.ToArray();
    }

    private static string Field(string header, string name, string path)
    {
        int i = header.IndexOf($"'{name}'", StringComparison.Ordinal);
        if (i < 0) throw new PtqException($"{path}: .npy header lacks '{name}'");
        int colon = header.IndexOf(':', i);
        int end = colon < 0 ? -1 : name == "shape" ? header.IndexOf(')', colon) + 1 : header.IndexOf(',', colon);
        if (colon < 0 || end <= colon) throw new PtqException($"{path}: .npy header field '{name}' is malformed");
        return header[(colon + 1)..end].Trim();
    }
}
