using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>ONNX TensorProto.DataType codes as plain ints, with their byte sizes.</summary>
public static class ElementType
{
    public const int Float = (int)TensorProto.Types.DataType.Float;
    public const int UInt8 = (int)TensorProto.Types.DataType.Uint8;
    public const int Int8 = (int)TensorProto.Types.DataType.Int8;
    public const int Int32 = (int)TensorProto.Types.DataType.Int32;
    public const int Int64 = (int)TensorProto.Types.DataType.Int64;
    public const int Float16 = (int)TensorProto.Types.DataType.Float16;
    public const int Double = (int)TensorProto.Types.DataType.Double;
    public const int Bool = (int)TensorProto.Types.DataType.Bool;
    public const int UInt4 = (int)TensorProto.Types.DataType.Uint4;
    public const int Int4 = (int)TensorProto.Types.DataType.Int4;

    /// <summary>Float, float16 or double: what a float input or a float feed takes.</summary>
    public static bool IsFloat(int type) => type is Float or Float16 or Double;

    public static string Name(int type) => ((TensorProto.Types.DataType)type).ToString().ToLowerInvariant();
}
