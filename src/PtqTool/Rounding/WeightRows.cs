using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rounding;

/// <summary>
/// A weight tensor seen as rows: row r holds the K weights that produce output channel r, all multiplying one input
/// patch (a Conv's Cin/group × kernel window, a Gemm/MatMul's K inputs). Rows of group g share that group's Gram matrix.
/// </summary>
/// <param name="RowMajor">Row r's weights are contiguous (Conv, Gemm transB=1); else they are a column of a K×N matrix.</param>
public sealed record WeightRows(int Rows, int K, int Groups, bool RowMajor)
{
    public int RowsPerGroup => Rows / Groups;

    public int GroupOf(int row) => row / RowsPerGroup;

    /// <summary>Index in the weight tensor of row r's k-th weight.</summary>
    public int Index(int row, int k) => RowMajor ? row * K + k : k * Rows + row;

    /// <summary>Row r of a tensor laid out like the weight (its float values or its integer codes).</summary>
    public T[] Row<T>(T[] values, int row)
    {
        var r = new T[K];
        for (int k = 0; k < K; k++) r[k] = values[Index(row, k)];
        return r;
    }

    /// <summary>
    /// The rows of a Conv, Gemm or MatMul weight (2-D, at input 1, its data at input 0), or null for anything else
    /// (ConvTranspose, a Gemm with transA, a batched MatMul weight): those keep nearest rounding.
    /// </summary>
    public static WeightRows? Of(NodeProto node, int weightInput, int[] shape)
    {
        if (weightInput != 1) return null;
        switch (node.OpType)
        {
            case "Conv" when shape.Length >= 3:
            {
                int groups = (int)NodeAttributes.GetInt(node, "group", 1);
                if (groups < 1 || shape[0] % groups != 0) return null;
                return new WeightRows(shape[0], shape[1..].Aggregate(1, (a, b) => a * b), groups, true);
            }
            case "Gemm" when shape.Length == 2 && NodeAttributes.GetInt(node, "transA", 0) == 0:
                return NodeAttributes.GetInt(node, "transB", 0) == 1
                    ? new WeightRows(shape[0], shape[1], 1, true)
                    : new WeightRows(shape[1], shape[0], 1, false);
            case "MatMul" when shape.Length == 2:
                return new WeightRows(shape[1], shape[0], 1, false);
            default:
                return null;
        }
    }
}
