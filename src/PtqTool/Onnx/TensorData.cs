using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using Google.Protobuf;
using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>Conversion between TensorProto (raw_data, typed fields, external data) and .NET arrays.</summary>
public static class TensorData
{
    public static long ElementCount(TensorProto t)
    {
        long n = 1;
        foreach (long d in t.Dims)
        {
            if (d < 0) throw new PtqException($"tensor '{t.Name}': negative dimension {d}");
            try { n = checked(n * d); }
            catch (OverflowException) { throw new PtqException($"tensor '{t.Name}': shape [{string.Join(", ", t.Dims)}] has too many elements"); }
        }
        return n;
    }

    public static int[] Shape(TensorProto t) => t.Dims.Select(d => d is >= 0 and <= int.MaxValue ? (int)d
        : throw new PtqException($"tensor '{t.Name}': dimension {d} is out of range")).ToArray();

    /// <summary>Reads any numeric tensor (float, float16, double, int8, uint8, int32, int64, int4, uint4) as float32.</summary>
    public static float[] ToFloats(TensorProto t, string? baseDirectory = null)
    {
        long count = ElementCount(t);
        if (count > Array.MaxLength) throw new PtqException($"tensor '{t.Name}': {count} elements is too many to read");
        int n = (int)count;
        var result = new float[n];
        byte[]? raw = RawBytes(t, baseDirectory);
        if (raw is not null)
        {
            DecodeRaw(raw, t.DataType, result, t.Name);
            return result;
        }
        switch (t.DataType)
        {
            case ElementType.Float:
                CheckCount(t, t.FloatData.Count, n);
                t.FloatData.CopyTo(result, 0);
                break;
            case ElementType.Double:
                CheckCount(t, t.DoubleData.Count, n);
                for (int i = 0; i < n; i++) result[i] = (float)t.DoubleData[i];
                break;
            case ElementType.Int64:
                CheckCount(t, t.Int64Data.Count, n);
                for (int i = 0; i < n; i++) result[i] = t.Int64Data[i];
                break;
            case ElementType.Float16:
                CheckCount(t, t.Int32Data.Count, n);
                for (int i = 0; i < n; i++) result[i] = (float)BitConverter.UInt16BitsToHalf((ushort)t.Int32Data[i]);
                break;
            case ElementType.Int32 or ElementType.Int8 or ElementType.UInt8 or ElementType.Bool:
                CheckCount(t, t.Int32Data.Count, n);
                for (int i = 0; i < n; i++) result[i] = t.Int32Data[i];
                break;
            case ElementType.Int4 or ElementType.UInt4:
                CheckCount(t, (t.Int32Data.Count * 2) >= n ? n : t.Int32Data.Count, n);
                for (int i = 0; i < n; i++) result[i] = Nibble((byte)t.Int32Data[i / 2], i, t.DataType == ElementType.Int4);
                break;
            default:
                throw new PtqException($"tensor '{t.Name}': element type {ElementType.Name(t.DataType)} is not numeric");
        }
        return result;
    }

    public static long[] ToInt64s(TensorProto t, string? baseDirectory = null)
    {
        byte[]? raw = RawBytes(t, baseDirectory);
        int n = checked((int)ElementCount(t));
        if (t.DataType == ElementType.Int64)
        {
            if (raw is not null) return MemoryMarshal.Cast<byte, long>(raw).ToArray();
            return t.Int64Data.ToArray();
        }
        if (t.DataType == ElementType.Int32)
        {
            if (raw is not null) return MemoryMarshal.Cast<byte, int>(raw).ToArray().Select(v => (long)v).ToArray();
            return t.Int32Data.Select(v => (long)v).ToArray();
        }
        return ToFloats(t, baseDirectory).Select(v => (long)v).Take(n).ToArray();
    }

    public static TensorProto FromFloats(string name, ReadOnlySpan<int> shape, ReadOnlySpan<float> values) =>
        Raw(name, ElementType.Float, shape, MemoryMarshal.AsBytes(values));

    public static TensorProto FromInt8(string name, ReadOnlySpan<int> shape, ReadOnlySpan<sbyte> values) =>
        Raw(name, ElementType.Int8, shape, MemoryMarshal.AsBytes(values));

    public static TensorProto FromUInt8(string name, ReadOnlySpan<int> shape, ReadOnlySpan<byte> values) =>
        Raw(name, ElementType.UInt8, shape, values);

    public static TensorProto FromInt32(string name, ReadOnlySpan<int> shape, ReadOnlySpan<int> values) =>
        Raw(name, ElementType.Int32, shape, MemoryMarshal.AsBytes(values));

    public static TensorProto FromInt64(string name, ReadOnlySpan<int> shape, ReadOnlySpan<long> values) =>
        Raw(name, ElementType.Int64, shape, MemoryMarshal.AsBytes(values));

    public static TensorProto FromFloat16(string name, ReadOnlySpan<int> shape, ReadOnlySpan<float> values)
    {
        var halves = new Half[values.Length];
        for (int i = 0; i < values.Length; i++) halves[i] = (Half)values[i];
        return Raw(name, ElementType.Float16, shape, MemoryMarshal.AsBytes(halves.AsSpan()));
    }

    /// <summary>4-bit integers packed two per byte, first element in the low nibble (ONNX INT4/UINT4 layout).</summary>
    public static TensorProto FromInt4(string name, ReadOnlySpan<int> shape, ReadOnlySpan<int> values, bool signed)
    {
        var packed = new byte[(values.Length + 1) / 2];
        for (int i = 0; i < values.Length; i++)
        {
            int nibble = values[i] & 0xF;
            packed[i / 2] |= (byte)(i % 2 == 0 ? nibble : nibble << 4);
        }
        return Raw(name, signed ? ElementType.Int4 : ElementType.UInt4, shape, packed);
    }

    /// <summary>A rank-0 tensor.</summary>
    public static TensorProto Scalar(string name, float value) => FromFloats(name, ReadOnlySpan<int>.Empty, [value]);

    private static TensorProto Raw(string name, int type, ReadOnlySpan<int> shape, ReadOnlySpan<byte> bytes)
    {
        var t = new TensorProto { Name = name, DataType = type, RawData = ByteString.CopyFrom(bytes) };
        foreach (int d in shape) t.Dims.Add(d);
        return t;
    }

    /// <summary>The tensor's raw little-endian bytes (inline or external), or null when it uses typed fields.</summary>
    public static byte[]? RawBytes(TensorProto t, string? baseDirectory)
    {
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            return ReadExternalBytes(t, baseDirectory ?? ".");
        return t.HasRawData ? t.RawData.ToByteArray() : null;
    }

    /// <summary>
    /// The external data file of a tensor, checked the way onnx.checker checks it: a relative location inside the model's
    /// folder (no absolute path, no ".."), so a model cannot read arbitrary files as tensors.
    /// </summary>
    public static (string Path, long Offset, long Length) ExternalLocation(TensorProto t, string baseDirectory)
    {
        string? location = null;
        long offset = 0, length = -1;
        foreach (var e in t.ExternalData)
        {
            switch (e.Key)
            {
                case "location": location = e.Value; break;
                case "offset":
                    if (!long.TryParse(e.Value, NumberStyles.None, CultureInfo.InvariantCulture, out offset))
                        throw new PtqException($"tensor '{t.Name}': external data offset '{e.Value}' is not a non-negative integer");
                    break;
                case "length":
                    if (!long.TryParse(e.Value, NumberStyles.None, CultureInfo.InvariantCulture, out length))
                        throw new PtqException($"tensor '{t.Name}': external data length '{e.Value}' is not a non-negative integer");
                    break;
            }
        }
        if (string.IsNullOrEmpty(location))
            throw new PtqException($"tensor '{t.Name}': external data without a location");
        if (Path.IsPathRooted(location) || location.Replace('\\', '/').Split('/').Contains(".."))
            throw new PtqException($"tensor '{t.Name}': external data location '{location}' leaves the model's folder (absolute or with '..'); refusing to read it");
        return (Path.Combine(baseDirectory, location), offset, length);
    }

    public static byte[] ReadExternalBytes(TensorProto t, string baseDirectory)
    {
        var (path, offset, length) = ExternalLocation(t, baseDirectory);
        if (FileIdentity.KindOf(path) != FileKind.Regular)
            throw new PtqException($"{path}: external data file of tensor '{t.Name}' not found (or not a regular file)");
        try
        {
            using var stream = File.OpenRead(path);
            if (length < 0) length = stream.Length - offset;
            if (offset + length > stream.Length || length < 0)
                throw new PtqException($"{path}: external data of tensor '{t.Name}' is truncated (needs {offset + length} bytes, file has {stream.Length})");
            long expected = ElementCount(t) * ElementSize(t.DataType);
            if (expected >= 0 && length != expected && t.DataType is not (ElementType.Int4 or ElementType.UInt4))
                throw new PtqException($"{path}: external data of tensor '{t.Name}' has {length} bytes, its shape needs {expected}");
            if (length > Array.MaxLength) throw new PtqException($"{path}: tensor '{t.Name}' is too large ({length} bytes)");
            var buffer = new byte[length];
            stream.Seek(offset, SeekOrigin.Begin);
            stream.ReadExactly(buffer);
            return buffer;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PtqException($"{path}: cannot read external data of tensor '{t.Name}' ({e.Message})", inner: e);
        }
    }

    /// <summary>Bytes per element of the numeric types, -1 for others.</summary>
    public static long ElementSize(int type) => type switch
    {
        ElementType.Float or ElementType.Int32 => 4,
        ElementType.Double or ElementType.Int64 => 8,
        ElementType.Float16 => 2,
        ElementType.Int8 or ElementType.UInt8 or ElementType.Bool => 1,
        _ => -1,
    };

    private static void DecodeRaw(byte[] raw, int type, float[] result, string name)
    {
        int n = result.Length;
        int needed = type switch
        {
            ElementType.Float or ElementType.Int32 => 4 * n,
            ElementType.Double or ElementType.Int64 => 8 * n,
            ElementType.Float16 => 2 * n,
            ElementType.Int8 or ElementType.UInt8 or ElementType.Bool => n,
            ElementType.Int4 or ElementType.UInt4 => (n + 1) / 2,
            _ => throw new PtqException($"tensor '{name}': element type {ElementType.Name(type)} is not numeric"),
        };
        if (raw.Length != needed)
            throw new PtqException($"tensor '{name}': raw_data has {raw.Length} bytes, expected {needed}");
        switch (type)
        {
            case ElementType.Float: MemoryMarshal.Cast<byte, float>(raw).CopyTo(result); break;
            case ElementType.Double: { var d = MemoryMarshal.Cast<byte, double>(raw); for (int i = 0; i < n; i++) result[i] = (float)d[i]; break; }
            case ElementType.Int32: { var d = MemoryMarshal.Cast<byte, int>(raw); for (int i = 0; i < n; i++) result[i] = d[i]; break; }
            case ElementType.Int64: { var d = MemoryMarshal.Cast<byte, long>(raw); for (int i = 0; i < n; i++) result[i] = d[i]; break; }
            case ElementType.Float16: for (int i = 0; i < n; i++) result[i] = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan(2 * i))); break;
            case ElementType.Int8: for (int i = 0; i < n; i++) result[i] = (sbyte)raw[i]; break;
            case ElementType.UInt8 or ElementType.Bool: for (int i = 0; i < n; i++) result[i] = raw[i]; break;
            case ElementType.Int4 or ElementType.UInt4: for (int i = 0; i < n; i++) result[i] = Nibble(raw[i / 2], i, type == ElementType.Int4); break;
        }
    }

    private static float Nibble(byte b, int index, bool signed)
    {
        int v = index % 2 == 0 ? b & 0xF : b >> 4;
        return signed && v >= 8 ? v - 16 : v;
    }

    private static void CheckCount(TensorProto t, int have, int need)
    {
        if (have != need)
            throw new PtqException($"tensor '{t.Name}': holds {have} values, its shape needs {need}");
    }
}
