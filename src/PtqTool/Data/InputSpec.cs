using PtqTool.Onnx;

namespace PtqTool.Data;

/// <summary>One graph input as the model declares it: name, ONNX element type, shape (−1 for a symbolic dimension, batch first).</summary>
public sealed record InputSpec(string Name, int ElementType, int[] DeclaredShape)
{
    public bool IsFloat => Onnx.ElementType.IsFloat(ElementType);

    public string TypeName => Onnx.ElementType.Name(ElementType);

    public string ShapeText => "[" + string.Join(", ", DeclaredShape.Select(d => d > 0 ? d.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?")) + "]";

    /// <summary>
    /// Checks <paramref name="array"/> against this input (element kind, rank, fixed dimensions) and returns it as a
    /// tensor with a batch dimension: an array of the input's full rank is a batch, one of rank less one is one sample.
    /// </summary>
    public FloatTensor Take(NpyArray array, string file)
    {
        bool integerInput = !IsFloat;
        if (integerInput != array.IsInteger)
            throw new PtqException($"{file}: input '{Name}' is {TypeName} in the model, the file holds {array.DtypeName}");
        int rank = DeclaredShape.Length;
        int[] shape = array.Shape.Length == rank ? array.Shape
            : array.Shape.Length == rank - 1 && rank > 0 ? [1, .. array.Shape]
            : throw new PtqException($"{file}: input '{Name}' has shape [{string.Join(", ", array.Shape)}]; the model takes {ShapeText} (rank {rank}, or {rank - 1} for one sample)");
        for (int d = 1; d < rank; d++)
            if (DeclaredShape[d] > 0 && shape[d] != DeclaredShape[d])
                throw new PtqException($"{file}: input '{Name}' has shape [{string.Join(", ", array.Shape)}]; the model takes {ShapeText} (dimension {d} must be {DeclaredShape[d]})");
        if (ElementType == Onnx.ElementType.Bool && array.Data.Any(v => v is not (0 or 1)))
            throw new PtqException($"{file}: input '{Name}' is bool in the model, the file holds values other than 0 and 1");
        return new FloatTensor(array.Data, shape);
    }

    /// <summary>The dtype kind (NumPy's "f4", "i8", …) of an ONNX element type, for arrays read from TensorProto files.</summary>
    public static string KindOf(int onnxType, string file) => onnxType switch
    {
        Onnx.ElementType.Float => "f4",
        Onnx.ElementType.Double => "f8",
        Onnx.ElementType.Float16 => "f2",
        Onnx.ElementType.Int64 => "i8",
        Onnx.ElementType.Int32 => "i4",
        Onnx.ElementType.Int8 => "i1",
        Onnx.ElementType.UInt8 => "u1",
        Onnx.ElementType.Bool => "b1",
        _ => throw new PtqException($"{file}: element type {Onnx.ElementType.Name(onnxType)} is not supported as model input"),
    };
}
