using Google.Protobuf;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Tests.Onnx;

public class TensorDataTests
{
    [Fact]
    public void Raw_and_typed_encodings_decode_to_the_same_values()
    {
        float[] values = [1.5f, -2.25f, 0f, 100f];
        var raw = TensorData.FromFloats("a", [2, 2], values);
        var typed = new TensorProto { Name = "b", DataType = ElementType.Float };
        typed.Dims.AddRange([2, 2]);
        typed.FloatData.AddRange(values);
        Assert.Equal(values, TensorData.ToFloats(raw));
        Assert.Equal(values, TensorData.ToFloats(typed));
        // raw_data is little-endian IEEE 754: 1.5f = 0x3FC00000
        Assert.Equal(new byte[] { 0x00, 0x00, 0xC0, 0x3F }, raw.RawData.Span[..4].ToArray());
    }

    [Fact]
    public void Integer_and_half_types_round_trip()
    {
        Assert.Equal(new float[] { -128, 0, 127 }, TensorData.ToFloats(TensorData.FromInt8("i8", [3], [-128, 0, 127])));
        Assert.Equal(new float[] { 0, 255 }, TensorData.ToFloats(TensorData.FromUInt8("u8", [2], [0, 255])));
        Assert.Equal(new float[] { -70000, 5 }, TensorData.ToFloats(TensorData.FromInt32("i32", [2], [-70000, 5])));
        Assert.Equal(new long[] { -3, 1L << 40 }, TensorData.ToInt64s(TensorData.FromInt64("i64", [2], [-3, 1L << 40])));
        Assert.Equal(new float[] { 0.5f, -1024f }, TensorData.ToFloats(TensorData.FromFloat16("h", [2], [0.5f, -1024f])));
        // float16 in int32_data holds the bit pattern: 0x3C00 = 1.0
        var typedHalf = new TensorProto { DataType = ElementType.Float16 };
        typedHalf.Dims.Add(1);
        typedHalf.Int32Data.Add(0x3C00);
        Assert.Equal(new float[] { 1f }, TensorData.ToFloats(typedHalf));
    }

    [Fact]
    public void Int4_packs_two_values_per_byte_low_nibble_first()
    {
        var t = TensorData.FromInt4("q", [3], [-8, 7, -1], signed: true);
        // −8 = 0x8 (low nibble), 7 = 0x7 (high nibble) → 0x78; −1 = 0xF → 0x0F
        Assert.Equal(new byte[] { 0x78, 0x0F }, t.RawData.ToByteArray());
        Assert.Equal(new float[] { -8, 7, -1 }, TensorData.ToFloats(t));
    }

    [Fact]
    public void Wrong_raw_length_is_reported_with_the_tensor_name()
    {
        var t = new TensorProto { Name = "broken", DataType = ElementType.Float, RawData = ByteString.CopyFrom(1, 2, 3) };
        t.Dims.Add(2);
        var e = Assert.Throws<PtqException>(() => TensorData.ToFloats(t));
        Assert.Contains("broken", e.Message);
    }
}
