using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace PtqTool.Onnx;

/// <summary>Turns a float-held input tensor into an ONNX Runtime value of the element type the model declares for it.</summary>
public static class InputValues
{
    /// <param name="copy">For float inputs: copy into a native buffer (owned by the value) rather than pin the managed array.</param>
    public static OrtValue Create(TensorElementType type, FloatTensor t, bool copy, string name)
    {
        long[] shape = t.Shape.Select(d => (long)d).ToArray();
        if (type == TensorElementType.Float && !copy) return OrtValue.CreateTensorValueFromMemory(t.Data, shape);
        var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, type, shape);
        try
        {
            ReadOnlySpan<float> src = t.Data;
            switch (type)
            {
                case TensorElementType.Float: src.CopyTo(value.GetTensorMutableDataAsSpan<float>()); break;
                case TensorElementType.Double: Convert(src, value.GetTensorMutableDataAsSpan<double>(), v => v); break;
                case TensorElementType.Float16:
                    {
                        var dst = value.GetTensorMutableDataAsSpan<ushort>();
                        for (int i = 0; i < src.Length; i++) dst[i] = BitConverter.HalfToUInt16Bits((Half)src[i]);
                        break;
                    }
                case TensorElementType.Int64: Convert(src, value.GetTensorMutableDataAsSpan<long>(), v => (long)v); break;
                case TensorElementType.Int32: Convert(src, value.GetTensorMutableDataAsSpan<int>(), v => (int)v); break;
                case TensorElementType.Int8: Convert(src, value.GetTensorMutableDataAsSpan<sbyte>(), v => (sbyte)v); break;
                case TensorElementType.UInt8: Convert(src, value.GetTensorMutableDataAsSpan<byte>(), v => (byte)v); break;
                case TensorElementType.Bool: Convert(src, value.GetTensorMutableDataAsSpan<bool>(), v => v != 0); break;
                default: throw new PtqException($"input '{name}' is {type}; ptq feeds float, float16, double, int64, int32, int8, uint8 and bool inputs");
            }
            return value;
        }
        catch
        {
            value.Dispose();
            throw;
        }
    }

    private static void Convert<T>(ReadOnlySpan<float> src, Span<T> dst, Func<float, T> cast)
    {
        for (int i = 0; i < src.Length; i++) dst[i] = cast(src[i]);
    }
}
