using Google.Protobuf;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite;

/// <summary>One MatMul weight packed for com.microsoft MatMulNBits: codes 0..15 as bytes [N, K/block, block/2], a scale per (column, block).</summary>
public sealed record PackedWeight(int K, int N, int BlockSize, byte[] Packed, float[] Scales);

/// <summary>
/// `--weight-storage int4` for MatMul: the constant weight [K, N] of a MatMul (which the plan then keeps float) runs
/// as ONNX Runtime's com.microsoft MatMulNBits, whose CPU kernel reads 4-bit weights natively (weight-only: the
/// activation is not quantized ahead of it; accuracy_level 4 lets the kernel compute in int8). Each column n of W is
/// cut into blocks of <see cref="BlockSize"/> values along K, each with its own scale s = max|w| / 7 and codes
/// q = round(w / s) + 8 in [1, 15] (the op's default zero point 8, so no zero-point input). Layout (the op's
/// definition, checked against ONNX Runtime's own output in the tests): B is uint8 [N, ⌈K/block⌉, block/2], value k of
/// column n in byte k/2 of its block, the low nibble for even k; scales are [N · ⌈K/block⌉], column-major by block; a
/// last partial block is padded with code 8 (zero).
/// </summary>
public static class MatMulNBits
{
    public const int BlockSize = 32;
    public const string Domain = "com.microsoft";

    /// <summary>Packs a row-major [K, N] float weight by nearest rounding in blocks of <paramref name="blockSize"/> along K.</summary>
    public static PackedWeight Pack(ReadOnlySpan<float> w, int k, int n, int blockSize = BlockSize)
    {
        int blocks = (k + blockSize - 1) / blockSize;
        var packed = new byte[n * blocks * blockSize / 2];
        var scales = new float[n * blocks];
        for (int col = 0; col < n; col++)
            for (int b = 0; b < blocks; b++)
            {
                float max = 0;
                for (int i = b * blockSize; i < Math.Min(k, (b + 1) * blockSize); i++) max = Math.Max(max, Math.Abs(w[i * n + col]));
                float s = scales[col * blocks + b] = Scale(max);
                for (int i = b * blockSize; i < (b + 1) * blockSize; i++) Store(packed, blocks, blockSize, col, i, i < k ? Code(w[i * n + col], s) : ZeroCode);
            }
        return new PackedWeight(k, n, blockSize, packed, scales);
    }

    /// <summary>The op's default zero point: code 8 stands for 0 (and pads a partial last block).</summary>
    public const int ZeroCode = 8;

    /// <summary>A block's scale from its largest magnitude: max / 7 (1 for an all-zero block).</summary>
    public static float Scale(float max) => max > 0 ? max / 7 : 1;

    /// <summary>The code of value <paramref name="w"/> at scale <paramref name="s"/>: round(w / s) + 8 in [1, 15].</summary>
    public static int Code(float w, float s) => (int)Math.Clamp(MathF.Round(w / s, MidpointRounding.ToEven) + ZeroCode, 1, 15);

    /// <summary>Writes the code of row <paramref name="row"/> of column <paramref name="col"/>: byte (row mod block) / 2 of its block, the low nibble for even rows.</summary>
    public static void Store(byte[] packed, int blocks, int blockSize, int col, int row, int code)
    {
        int j = row % blockSize;
        packed[(col * blocks + row / blockSize) * (blockSize / 2) + j / 2] |= (byte)(j % 2 == 0 ? code : code << 4);
    }

    /// <summary>The weight the packed codes stand for, row-major [K, N]: (q − 8)·s.</summary>
    public static float[] Dequantize(PackedWeight p)
    {
        int blocks = (p.K + p.BlockSize - 1) / p.BlockSize, blob = p.BlockSize / 2;
        var w = new float[p.K * p.N];
        for (int col = 0; col < p.N; col++)
            for (int i = 0; i < p.K; i++)
            {
                int b = i / p.BlockSize, j = i % p.BlockSize;
                byte v = p.Packed[(col * blocks + b) * blob + j / 2];
                int q = j % 2 == 0 ? v & 0x0F : v >> 4;
                w[i * p.N + col] = (q - 8) * p.Scales[col * blocks + b];
            }
        return w;
    }

    /// <summary>A MatMulNBits node computing <paramref name="a"/> · W into <paramref name="output"/>, with its two initializers added.</summary>
    public static NodeProto Node(OnnxGraph graph, string name, string a, string output, PackedWeight p, int accuracyLevel = 4)
    {
        int blocks = (p.K + p.BlockSize - 1) / p.BlockSize;
        string b = graph.UniqueName(name + "_nbits_B"), s = graph.UniqueName(name + "_nbits_scales");
        graph.AddInitializer(new TensorProto { Name = b, DataType = ElementType.UInt8, Dims = { p.N, blocks, p.BlockSize / 2 }, RawData = ByteString.CopyFrom(p.Packed) });
        graph.AddInitializer(TensorData.FromFloats(s, [p.N * blocks], p.Scales));
        var node = NodeAttributes.Node("MatMulNBits", name, [a, b, s], [output],
            NodeAttributes.Int("K", p.K), NodeAttributes.Int("N", p.N), NodeAttributes.Int("bits", 4),
            NodeAttributes.Int("block_size", p.BlockSize), NodeAttributes.Int("accuracy_level", accuracyLevel));
        node.Domain = Domain;
        return node;
    }

    /// <summary>A MatMul with a constant float [K, N] weight (K even): the plan keeps it float, and it runs as MatMulNBits.</summary>
    public static bool Eligible(OnnxGraph graph, NodeProto node) =>
        node.OpType == "MatMul" && graph.Initializer(node.Input[1]) is { Dims.Count: 2, DataType: ElementType.Float } w && w.Dims[0] % 2 == 0 && w.Dims[0] >= 16
        && graph.Initializer(node.Input[0]) is null;

    /// <summary>
    /// Replaces every eligible MatMul (<see cref="Eligible"/>, kept float by the plan) with MatMulNBits packed from its
    /// float weight; an activation the rewrite dequantized for it is read from before its QuantizeLinear. Q/DQ nodes and
    /// initializers nothing reads any more are dropped.
    /// </summary>
    /// <returns>How many MatMuls now run as MatMulNBits.</returns>
    /// <param name="solver">Packs the weight of a MatMul reading the given activation (its name before quantization), or
    /// returns null for nearest rounding (<see cref="Pack"/>).</param>
    public static int Apply(ModelProto model, Func<string, float[], int, int, PackedWeight?>? solver = null)
    {
        var graph = new OnnxGraph(model);
        int converted = 0;
        for (int index = 0; index < model.Graph.Node.Count; index++)
        {
            var node = model.Graph.Node[index];
            if (!Eligible(graph, node)) continue;
            var weight = graph.Initializer(node.Input[1])!;
            int k = (int)weight.Dims[0], n = (int)weight.Dims[1];
            string a = node.Input[0];
            if (graph.Producer(a) is { OpType: "DequantizeLinear" } adq && graph.Initializer(adq.Input[0]) is null && graph.Producer(adq.Input[0]) is { OpType: "QuantizeLinear" } aq)
                a = aq.Input[0];
            var w = graph.InitializerFloats(node.Input[1]);
            var packed = solver?.Invoke(a, w, k, n) ?? Pack(w, k, n);
            model.Graph.Node[index] = Node(graph, node.Name.Length > 0 ? node.Name : $"matmul_{index}", a, node.Output[0], packed);
            converted++;
        }
        if (converted == 0) return 0;
        PruneUnread(model);
        if (!model.OpsetImport.Any(o => o.Domain == Domain)) model.OpsetImport.Add(new OperatorSetIdProto { Domain = Domain, Version = 1 });
        return converted;
    }

    /// <summary>Removes QuantizeLinear/DequantizeLinear nodes whose outputs nothing reads, and initializers no node reads.</summary>
    internal static void PruneUnread(ModelProto model)
    {
        for (bool removed = true; removed;)
        {
            var read = model.Graph.Node.SelectMany(n => n.Input).Concat(model.Graph.Output.Select(o => o.Name)).ToHashSet(StringComparer.Ordinal);
            var dead = model.Graph.Node.Where(n => n.OpType is "QuantizeLinear" or "DequantizeLinear" && !n.Output.Any(read.Contains)).ToList();
            foreach (var n in dead) model.Graph.Node.Remove(n);
            removed = dead.Count > 0;
        }
        var used = model.Graph.Node.SelectMany(n => n.Input).ToHashSet(StringComparer.Ordinal);
        foreach (var t in model.Graph.Initializer.Where(t => !used.Contains(t.Name) && !model.Graph.Input.Any(i => i.Name == t.Name)).ToList())
            model.Graph.Initializer.Remove(t);
    }
}
