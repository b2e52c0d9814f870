using Google.Protobuf;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Robustness;

/// <summary>Shared helpers for the hostile-input tests: a working copy of a bundled model and the checks every failure must pass.</summary>
public static class Hostile
{
    /// <summary>A copy of a bundled model (with its sidecar) in a fresh folder.</summary>
    public static (string Dir, string Model) Copy(string name = "fmnist_cnn")
    {
        string dir = Repo.TempDir(), model = Path.Combine(dir, name + ".onnx");
        File.Copy(Repo.Model(name), model);
        File.Copy(Path.ChangeExtension(Repo.Model(name), ".json"), Path.ChangeExtension(model, ".json"));
        return (dir, model);
    }

    /// <summary>A calibration folder with a few of the bundled images.</summary>
    public static string SmallCalib(string dir, int count = 16)
    {
        string calib = Path.Combine(dir, "calib");
        Directory.CreateDirectory(calib);
        foreach (var f in Directory.GetFiles(Repo.CalibDir).Order().Take(count)) File.Copy(f, Path.Combine(calib, Path.GetFileName(f)));
        return calib;
    }

    /// <summary>Exit 2, exactly one "ptq: error:" line that contains every word, no internal error.</summary>
    public static void AssertBadInput((int Code, string Out, string Err) r, params string[] words)
    {
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Err}");
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("ptq:", StringComparison.Ordinal)).ToList();
        Assert.True(lines.Count == 1 || (lines.Count == 2 && lines[1].Contains("--help")), r.Err);
        Assert.StartsWith("ptq: error:", lines[0]);
        foreach (var w in words) Assert.Contains(w, lines[0]);
    }

    /// <summary>Every file below a folder with its bytes' hash: to assert nothing was written or changed.</summary>
    public static Dictionary<string, string> Snapshot(string dir) =>
        Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(f => f,
            f => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f))));

    public static ModelProto Load(string path) => OnnxModelFile.Load(path);

    public static void Save(ModelProto model, string path) => File.WriteAllBytes(path, model.ToByteArray());

    /// <summary>A PNG whose header claims the given size (valid chunk CRCs) with almost no pixel data.</summary>
    public static byte[] PngHeaderOnly(int width, int height)
    {
        var ms = new MemoryStream();
        ms.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; ihdr[9] = 0; // 8-bit gray
        Chunk(ms, "IHDR", ihdr);
        Chunk(ms, "IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        Chunk(ms, "IEND", []);
        return ms.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        var len = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        var body = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(body);
        var crc = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(body));
        s.Write(crc);
    }

    private static uint Crc32(byte[] data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }

    /// <summary>A .npy with the given header dictionary and body bytes.</summary>
    public static byte[] Npy(string header, int bodyBytes)
    {
        string h = header + new string(' ', (64 - (10 + header.Length + 1) % 64) % 64) + "\n";
        var ms = new MemoryStream();
        ms.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        ms.Write(BitConverter.GetBytes((ushort)h.Length));
        ms.Write(System.Text.Encoding.ASCII.GetBytes(h));
        ms.Write(new byte[bodyBytes]);
        return ms.ToArray();
    }
}
