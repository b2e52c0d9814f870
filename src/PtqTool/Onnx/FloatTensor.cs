namespace PtqTool.Onnx;

/// <summary>A dense float32 tensor in row-major order, first dimension the batch.</summary>
public sealed record FloatTensor(float[] Data, int[] Shape)
{
    public int Batch => Shape.Length == 0 ? 1 : Shape[0];

    public int SampleSize => Shape.Length == 0 ? 1 : Data.Length / Math.Max(1, Shape[0]);

    public static int Count(ReadOnlySpan<int> shape)
    {
        int n = 1;
        foreach (int d in shape) n *= d;
        return n;
    }

    /// <summary>Samples [start, start+count) along the first dimension.</summary>
    public FloatTensor Slice(int start, int count)
    {
        int per = SampleSize;
        var shape = (int[])Shape.Clone();
        shape[0] = count;
        return new FloatTensor(Data.AsSpan(start * per, count * per).ToArray(), shape);
    }

    /// <summary>Joins tensors along the first dimension.</summary>
    public static FloatTensor Concat(IReadOnlyList<FloatTensor> parts)
    {
        if (parts.Count == 1) return parts[0];
        int total = parts.Sum(p => p.Data.Length);
        var data = new float[total];
        int offset = 0;
        foreach (var p in parts) { p.Data.CopyTo(data, offset); offset += p.Data.Length; }
        var shape = (int[])parts[0].Shape.Clone();
        shape[0] = parts.Sum(p => p.Batch);
        return new FloatTensor(data, shape);
    }

    public override string ToString() => $"[{string.Join('x', Shape)}]";
}
