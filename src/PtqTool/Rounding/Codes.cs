using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rounding;

/// <summary>The integer codes of a symmetric weight initializer: int8 as stored, uint8 around its zero point 128 (the u8-weights guard).</summary>
public static class Codes
{
    /// <param name="offset">What was added to each code to store it (0 for int8, 128 for uint8).</param>
    public static int[] Read(TensorProto t, out int offset)
    {
        var bytes = TensorData.RawBytes(t, null);
        switch (t.DataType)
        {
            case ElementType.Int8:
                offset = 0;
                return bytes is not null ? bytes.Select(b => (int)(sbyte)b).ToArray() : t.Int32Data.ToArray();
            case ElementType.UInt8:
                offset = 128;
                return bytes is not null ? bytes.Select(b => b - 128).ToArray() : t.Int32Data.Select(v => v - 128).ToArray();
            default:
                throw new PtqException($"weight codes '{t.Name}': element type {t.DataType} is not int8 or uint8");
        }
    }

    /// <summary>A tensor of the same name, type and shape holding <paramref name="codes"/>.</summary>
    public static TensorProto Write(TensorProto like, int[] codes, int offset)
    {
        var shape = TensorData.Shape(like);
        return offset == 0
            ? TensorData.FromInt8(like.Name, shape, codes.Select(c => (sbyte)c).ToArray())
            : TensorData.FromUInt8(like.Name, shape, codes.Select(c => (byte)(c + offset)).ToArray());
    }
}
