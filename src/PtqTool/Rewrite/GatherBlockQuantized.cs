using Google.Protobuf;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite;

/// <summary>An embedding table [rows, columns] packed for com.microsoft GatherBlockQuantized: codes as uint8, a scale per (row, block).</summary>
public sealed record PackedTable(int Rows, int Columns, int Bits, int BlockSize, byte[] Packed, float[] Scales)
{
    public int Blocks => (Columns + BlockSize - 1) / BlockSize;
    /// <summary>The op's default zero point for uint8 data without a zero-point input: 2^(bits−1).</summary>
    public int ZeroPoint => 1 << (Bits - 1);
    /// <summary>Bytes per row of the packed data: two 4-bit codes per byte, or one 8-bit code.</summary>
    public int RowBytes => Bits == 4 ? Columns / 2 : Columns;
}

/// <summary>
/// Weight-only quantization of embedding tables: a Gather whose data is a constant float [rows, columns] table and
/// whose indices come from the graph (token ids) runs as ONNX Runtime's com.microsoft GatherBlockQuantized, which
/// reads the integer table and dequantizes only the rows it gathers. Each row is cut into blocks of
/// <see cref="BlockSize"/> columns, each with a scale s = max|w| / (2^(bits−1) − 1) and codes q = round(w / s) + z
/// in [1, 2z − 1] around the op's default zero point z = 2^(bits−1) (8 for 4 bits, 128 for 8), so there is no
/// zero-point input. Layout (the op's uint8 convention, checked against ONNX Runtime's own output in the tests): data is
/// uint8 [rows, columns] for 8 bits, [rows, columns / 2] for 4 bits with column j of a row in byte j/2, the low nibble
/// for even j; scales are float [rows, ⌈columns / block⌉]; gather_axis 0, quantize_axis 1. The output is
/// (q − z)·s, float, in the Gather's place.
/// </summary>
public static class GatherBlockQuantized
{
    public const int BlockSize = 32;
    /// <summary>Tables smaller than this many values stay float (token-type tables and the like: nothing to gain).</summary>
    public const int MinimumValues = 4096;

    /// <summary>Packs a row-major [rows, columns] float table by nearest rounding in blocks of <paramref name="blockSize"/> along each row.</summary>
    public static PackedTable Pack(ReadOnlySpan<float> table, int rows, int columns, int bits, int blockSize = BlockSize)
    {
        if (bits is not (4 or 8)) throw new ArgumentOutOfRangeException(nameof(bits), "GatherBlockQuantized tables are 4- or 8-bit");
        if (bits == 4 && columns % 2 != 0) throw new ArgumentException("a 4-bit table needs an even number of columns");
        int blocks = (columns + blockSize - 1) / blockSize, z = 1 << (bits - 1), rowBytes = bits == 4 ? columns / 2 : columns;
        var packed = new byte[rows * rowBytes];
        var scales = new float[rows * blocks];
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < blocks; b++)
            {
                int start = b * blockSize, end = Math.Min(columns, start + blockSize);
                float max = 0;
                for (int j = start; j < end; j++) max = Math.Max(max, Math.Abs(table[r * columns + j]));
                float s = max > 0 ? max / (z - 1) : 1;
                scales[r * blocks + b] = s;
                for (int j = start; j < end; j++)
                {
                    int q = (int)Math.Clamp(MathF.Round(table[r * columns + j] / s, MidpointRounding.ToEven) + z, 1, 2 * z - 1);
                    if (bits == 8) packed[r * rowBytes + j] = (byte)q;
                    else packed[r * rowBytes + j / 2] |= (byte)(j % 2 == 0 ? q : q << 4);
                }
            }
        return new PackedTable(rows, columns, bits, blockSize, packed, scales);
    }

    /// <summary>The table the packed codes stand for, row-major [rows, columns]: (q − z)·s.</summary>
    public static float[] Dequantize(PackedTable p)
    {
        var w = new float[p.Rows * p.Columns];
        for (int r = 0; r < p.Rows; r++)
            for (int j = 0; j < p.Columns; j++)
            {
                int q = p.Bits == 8 ? p.Packed[r * p.RowBytes + j] : (j % 2 == 0 ? p.Packed[r * p.RowBytes + j / 2] & 0x0F : p.Packed[r * p.RowBytes + j / 2] >> 4);
                w[r * p.Columns + j] = (q - p.ZeroPoint) * p.Scales[r * p.Blocks + j / p.BlockSize];
            }
        return w;
    }

    /// <summary>Adds the packed table's data and scales as initializers named after <paramref name="name"/>; returns their names.</summary>
    public static (string Data, string Scales) AddInitializers(OnnxGraph graph, string name, PackedTable p)
    {
        string data = graph.UniqueName(name + "_q" + p.Bits), scales = graph.UniqueName(name + "_q" + p.Bits + "_scales");
        graph.AddInitializer(new TensorProto { Name = data, DataType = ElementType.UInt8, Dims = { p.Rows, p.RowBytes }, RawData = ByteString.CopyFrom(p.Packed) });
        graph.AddInitializer(TensorData.FromFloats(scales, [p.Rows, p.Blocks], p.Scales));
        return (data, scales);
    }

    /// <summary>A GatherBlockQuantized node reading rows <paramref name="indices"/> of the packed table into <paramref name="output"/>.</summary>
    public static NodeProto Node(string name, string data, string scales, string indices, string output, PackedTable p)
    {
        var node = NodeAttributes.Node("GatherBlockQuantized", name, [data, indices, scales], [output],
            NodeAttributes.Int("gather_axis", 0), NodeAttributes.Int("quantize_axis", 1), NodeAttributes.Int("block_size", p.BlockSize), NodeAttributes.Int("bits", p.Bits));
        node.Domain = MatMulNBits.Domain;
        return node;
    }

    /// <summary>
    /// A Gather along axis 0 of a constant float [rows, columns] table of at least <see cref="MinimumValues"/> values
    /// (columns even for 4 bits), with indices computed by the graph; the table is read by nothing but such Gathers.
    /// </summary>
    public static bool Eligible(OnnxGraph graph, NodeProto node, int bits) =>
        node.OpType == "Gather" && node.Domain is ("" or "ai.onnx") && NodeAttributes.GetInt(node, "axis", 0) == 0
        && graph.Initializer(node.Input[0]) is { Dims.Count: 2, DataType: ElementType.Float } t
        && t.Dims[0] * t.Dims[1] >= MinimumValues && (bits == 8 || t.Dims[1] % 2 == 0)
        && graph.Initializer(node.Input[1]) is null
        && graph.Consumers(node.Input[0]).All(c => c.OpType == "Gather" && c.Input[0] == node.Input[0] && c.Input.Skip(1).All(i => i != node.Input[0]));

    /// <summary>
    /// Replaces every eligible Gather (<see cref="Eligible"/>) with GatherBlockQuantized at <paramref name="bits"/>;
    /// a table read by several Gathers is packed once. The float tables nothing reads any more are dropped.
    /// </summary>
    /// <returns>How many tables were packed.</returns>
    public static int Apply(ModelProto model, int bits)
    {
        var graph = new OnnxGraph(model);
        var packed = new Dictionary<string, (string Data, string Scales, PackedTable Table)>(StringComparer.Ordinal);
        var eligible = Enumerable.Range(0, model.Graph.Node.Count).Where(i => Eligible(graph, model.Graph.Node[i], bits)).ToList();
        foreach (int index in eligible)
        {
            var node = model.Graph.Node[index];
            string table = node.Input[0];
            if (!packed.TryGetValue(table, out var entry))
            {
                var t = graph.Initializer(table)!;
                var p = Pack(graph.InitializerFloats(table), (int)t.Dims[0], (int)t.Dims[1], bits);
                var (data, scales) = AddInitializers(graph, table, p);
                packed[table] = entry = (data, scales, p);
            }
            model.Graph.Node[index] = Node(node.Name.Length > 0 ? node.Name : $"gather_{index}", entry.Data, entry.Scales, node.Input[1], node.Output[0], entry.Table);
        }
        if (packed.Count == 0) return 0;
        MatMulNBits.PruneUnread(model);
        if (!model.OpsetImport.Any(o => o.Domain == MatMulNBits.Domain)) model.OpsetImport.Add(new OperatorSetIdProto { Domain = MatMulNBits.Domain, Version = 1 });
        return packed.Count;
    }
}
