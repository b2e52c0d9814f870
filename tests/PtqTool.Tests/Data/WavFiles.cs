using System.Buffers.Binary;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Tests.Data;

/// <summary>WAV bytes written field by field (RIFF header, fmt, an optional extra chunk, data), and a small raw-audio model.</summary>
public static class WavFiles
{
    /// <summary>A WAV file of interleaved frames given as integer codes (PCM) or floats (format 3), <paramref name="extensible"/> as WAVE_FORMAT_EXTENSIBLE.</summary>
    public static byte[] Write(double[][] frames, int rate, int bits, bool isFloat = false, bool extensible = false, bool listChunk = false, ushort? formatCode = null)
    {
        int channels = frames.Length > 0 ? frames[0].Length : 1, width = bits / 8;
        var data = new byte[frames.Length * channels * width];
        for (int i = 0; i < frames.Length; i++)
            for (int c = 0; c < channels; c++)
            {
                var s = data.AsSpan((i * channels + c) * width, width);
                double v = frames[i][c];
                if (isFloat && bits == 32) BinaryPrimitives.WriteSingleLittleEndian(s, (float)v);
                else if (isFloat) BinaryPrimitives.WriteDoubleLittleEndian(s, v);
                else if (bits == 8) s[0] = (byte)((int)v + 128);
                else if (bits == 16) BinaryPrimitives.WriteInt16LittleEndian(s, (short)v);
                else if (bits == 24) { int x = (int)v; s[0] = (byte)x; s[1] = (byte)(x >> 8); s[2] = (byte)(x >> 16); }
                else BinaryPrimitives.WriteInt32LittleEndian(s, (int)v);
            }
        ushort code = formatCode ?? (ushort)(isFloat ? 3 : 1);
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms);
        w.Write("RIFF"u8); w.Write(0); w.Write("WAVE"u8);
        w.Write("fmt "u8); w.Write(extensible ? 40 : 16);
        w.Write(extensible ? (ushort)0xFFFE : code); w.Write((ushort)channels); w.Write(rate); w.Write(rate * channels * width);
        w.Write((ushort)(channels * width)); w.Write((ushort)bits);
        if (extensible)
        {
            w.Write((ushort)22); w.Write((ushort)bits); w.Write(0);
            w.Write(code); w.Write(new byte[] { 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71 });
        }
        if (listChunk) { w.Write("LIST"u8); w.Write(5); w.Write("INFOx"u8); w.Write((byte)0); }
        w.Write("data"u8); w.Write(data.Length); w.Write(data);
        w.Flush();
        var bytes = ms.ToArray();
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), bytes.Length - 8);
        return bytes;
    }

    /// <summary>A mono 16-bit file of these codes.</summary>
    public static byte[] Mono16(short[] codes, int rate = 16000) => Write(codes.Select(c => new double[] { c }).ToArray(), rate, 16);

    /// <summary>A seeded clip: a sine plus noise, as 16-bit codes.</summary>
    public static short[] Clip(int length, int seed)
    {
        var rng = new Random(seed);
        double f = 200 + 600 * rng.NextDouble();
        return Enumerable.Range(0, length).Select(i => (short)Math.Clamp(9000 * Math.Sin(2 * Math.PI * f * i / 16000) + 2000 * (rng.NextDouble() * 2 - 1), -32768, 32767)).ToArray();
    }

    /// <summary>
    /// Raw audio in, three scores out: x [N, 1, L] (L symbolic unless <paramref name="length"/> is given) → Conv(4 filters,
    /// 9 taps, stride 4) → Relu → Conv(4→4, 5 taps) → Relu → ReduceMean over time → MatMul [4, 3].
    /// </summary>
    public static ModelProto AudioModel(int length = -1, int seed = 7)
    {
        var rng = new Random(seed);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "audio" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        var g = new OnnxGraph(model);
        g.Graph.Input.Add(Value("audio", [-1, 1, length]));
        g.AddInitializer(TensorData.FromFloats("W1", [4, 1, 9], Random(36)));
        g.AddInitializer(TensorData.FromFloats("B1", [4], Random(4)));
        g.AddInitializer(TensorData.FromFloats("W2", [4, 4, 5], Random(80)));
        g.AddInitializer(TensorData.FromFloats("B2", [4], Random(4)));
        g.AddInitializer(TensorData.FromFloats("W3", [4, 3], Random(12)));
        g.AddNode(NodeAttributes.Node("Conv", "conv1", ["audio", "W1", "B1"], ["c1"], NodeAttributes.Ints("strides", [4])));
        g.AddNode(NodeAttributes.Node("Relu", "relu1", ["c1"], ["r1"]));
        g.AddNode(NodeAttributes.Node("Conv", "conv2", ["r1", "W2", "B2"], ["c2"]));
        g.AddNode(NodeAttributes.Node("Relu", "relu2", ["c2"], ["r2"]));
        g.AddNode(NodeAttributes.Node("ReduceMean", "pool", ["r2"], ["pooled"], NodeAttributes.Ints("axes", [2]), NodeAttributes.Int("keepdims", 0)));
        g.AddNode(NodeAttributes.Node("MatMul", "head", ["pooled", "W3"], ["scores"]));
        g.Graph.Output.Add(Value("scores", [-1, 3]));
        return model;
    }

    private static ValueInfoProto Value(string name, int[] shape)
    {
        var v = new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = ElementType.Float, Shape = new TensorShapeProto() } } };
        foreach (int d in shape)
            v.Type.TensorType.Shape.Dim.Add(d > 0 ? new TensorShapeProto.Types.Dimension { DimValue = d } : new TensorShapeProto.Types.Dimension { DimParam = v.Type.TensorType.Shape.Dim.Count == 0 ? "batch" : "samples" });
        return v;
    }
}
