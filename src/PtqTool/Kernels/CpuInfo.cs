using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Text;

namespace PtqTool.Kernels;

/// <summary>
/// The CPU this process runs on, read with CPUID the way ONNX Runtime's MLAS reads it (so both agree on which integer
/// kernels run): model name, cores, and the instruction sets that decide the u8×s8 kernels.
/// </summary>
public sealed record CpuInfo(string Model, Architecture Architecture, int Cores, bool Avx2, bool Avx512Bw, bool Avx512Vnni, bool AvxVnni, bool AmxInt8)
{
    private static readonly Lazy<CpuInfo> Current = new(Read);

    public static CpuInfo This => Current.Value;

    public bool Vnni => Avx512Vnni || AvxVnni;

    /// <summary>The target whose kernels this CPU runs.</summary>
    public KernelTarget NativeTarget => Architecture switch
    {
        Architecture.X64 when Vnni || AmxInt8 => KernelTarget.X86Vnni,
        Architecture.X64 when Avx2 || Avx512Bw => KernelTarget.X86Avx2,
        Architecture.Arm64 => KernelTarget.Arm64,
        _ => KernelTarget.Portable,
    };

    /// <summary>One line naming the CPU, e.g. "Intel(R) Xeon(R) Processor, 2 cores, AVX2 AVX-512BW AVX-512-VNNI AVX-VNNI (x86-vnni kernels)".</summary>
    public string Describe()
    {
        var f = new List<string>();
        if (Avx2) f.Add("AVX2");
        if (Avx512Bw) f.Add("AVX-512BW");
        if (Avx512Vnni) f.Add("AVX-512-VNNI");
        if (AvxVnni) f.Add("AVX-VNNI");
        if (AmxInt8) f.Add("AMX-INT8");
        if (f.Count == 0) f.Add(Architecture.ToString());
        return $"{Model}, {Cores} cores, {string.Join(" ", f)} ({KernelTargets.Name(NativeTarget)} kernels)";
    }

    private static CpuInfo Read()
    {
        var arch = RuntimeInformation.ProcessArchitecture;
        int cores = Environment.ProcessorCount;
        if (!X86Base.IsSupported) return new CpuInfo(ProcCpuModel() ?? arch.ToString(), arch, cores, false, false, false, false, false);
        var (maxLeaf, _, _, _) = X86Base.CpuId(0, 0);
        var (_, _, c1, _) = X86Base.CpuId(1, 0);
        bool osAvx = (c1 & (1 << 27)) != 0 && (c1 & (1 << 28)) != 0;
        int b7 = 0, c7 = 0, d7 = 0, a71 = 0;
        if (maxLeaf >= 7)
        {
            (_, b7, c7, d7) = X86Base.CpuId(7, 0);
            (a71, _, _, _) = X86Base.CpuId(7, 1);
        }
        bool avx2 = osAvx && (b7 & (1 << 5)) != 0;
        // AVX-512 needs the OS to save its state too; .NET reports that through Avx512F.IsSupported.
        bool avx512 = avx2 && Avx512F.IsSupported;
        bool bw = avx512 && (b7 & (1 << 30)) != 0 && (b7 & (1 << 17)) != 0 && (b7 & (1 << 31)) != 0;
        bool vnni512 = bw && (c7 & (1 << 11)) != 0;
        bool avxVnni = avx2 && (a71 & (1 << 4)) != 0;
        bool amx = (d7 & (1 << 25)) != 0 && (d7 & (1 << 24)) != 0;
        return new CpuInfo(BrandString() ?? ProcCpuModel() ?? "x86-64", arch, cores, avx2, bw, vnni512, avxVnni, amx);
    }

    private static string? BrandString()
    {
        var (max, _, _, _) = X86Base.CpuId(unchecked((int)0x80000000), 0);
        if ((uint)max < 0x80000004) return null;
        var sb = new StringBuilder();
        for (int leaf = 0; leaf < 3; leaf++)
        {
            var (a, b, c, d) = X86Base.CpuId(unchecked((int)0x80000002) + leaf, 0);
            foreach (int r in new[] { a, b, c, d })
                for (int k = 0; k < 4; k++) sb.Append((char)((r >> (8 * k)) & 0xFF));
        }
        string s = sb.ToString().Trim('\0', ' ');
        return s.Length == 0 ? null : System.Text.RegularExpressions.Regex.Replace(s, @"\s+", " ");
    }

    private static string? ProcCpuModel()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("model name", StringComparison.Ordinal) || line.StartsWith("Model", StringComparison.Ordinal))
                    return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }
}
