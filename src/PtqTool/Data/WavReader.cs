using System.Buffers.Binary;

namespace PtqTool.Data;

/// <summary>A decoded RIFF/WAVE file: samples mixed down to one channel, on [-1, 1] for integer PCM (float files as stored).</summary>
public sealed record WavAudio(float[] Samples, int SampleRate, int Channels, int BitsPerSample, bool IsFloat);

/// <summary>
/// Reads RIFF/WAVE audio: integer PCM of 8 (unsigned), 16, 24 or 32 bits, IEEE float of 32 or 64 bits, plain or
/// WAVE_FORMAT_EXTENSIBLE. Several channels are averaged into one. Integer PCM is divided by 2^(bits−1), so 16-bit
/// samples land on [-1, 1). Chunks other than "fmt " and "data" are skipped (RIFF pads odd chunk sizes by one byte).
/// A data chunk whose size is 0 or 0xFFFFFFFF (a streamed writer that never went back to fill it in) runs to the end of
/// the file. Compressed formats (ADPCM, µ-law, MP3 in WAV…) are refused.
/// </summary>
public static class WavReader
{
    private const ushort FormatPcm = 1, FormatFloat = 3, FormatExtensible = 0xFFFE;

    /// <summary>Most frames read from one file (about 70 minutes at 16 kHz): longer recordings are refused rather than held whole.</summary>
    public const long MaxFrames = 1L << 26;

    public static WavAudio Read(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new PtqException($"{path}: cannot read ({e.Message})", inner: e); }
        return Decode(bytes, path);
    }

    public static WavAudio Decode(ReadOnlySpan<byte> bytes, string path)
    {
        if (bytes.Length < 12 || !bytes[..4].SequenceEqual("RIFF"u8) || !bytes.Slice(8, 4).SequenceEqual("WAVE"u8))
            throw new PtqException($"{path}: not a WAV file (no RIFF/WAVE header)");
        int pos = 12;
        ushort format = 0, channels = 0, bits = 0, blockAlign = 0;
        int rate = 0;
        bool haveFormat = false;
        while (pos + 8 <= bytes.Length)
        {
            var id = bytes.Slice(pos, 4);
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(bytes.Slice(pos + 4, 4));
            int body = pos + 8;
            if (id.SequenceEqual("fmt "u8))
            {
                if (size < 16 || body + 16 > bytes.Length) throw new PtqException($"{path}: truncated WAV format chunk");
                var f = bytes.Slice(body, (int)Math.Min(size, (uint)(bytes.Length - body)));
                format = BinaryPrimitives.ReadUInt16LittleEndian(f);
                channels = BinaryPrimitives.ReadUInt16LittleEndian(f[2..]);
                rate = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(f[4..]), int.MaxValue);
                blockAlign = BinaryPrimitives.ReadUInt16LittleEndian(f[12..]);
                bits = BinaryPrimitives.ReadUInt16LittleEndian(f[14..]);
                if (format == FormatExtensible)
                {
                    // cbSize, valid bits, channel mask, then the sub-format GUID whose first two bytes are the format code.
                    if (f.Length < 26) throw new PtqException($"{path}: truncated WAVE_FORMAT_EXTENSIBLE format chunk");
                    format = BinaryPrimitives.ReadUInt16LittleEndian(f[24..]);
                }
                haveFormat = true;
            }
            else if (id.SequenceEqual("data"u8))
            {
                if (!haveFormat) throw new PtqException($"{path}: WAV data chunk before its format chunk");
                long available = bytes.Length - body;
                long length = size is 0 or uint.MaxValue ? available : size;
                if (length > available)
                    throw new PtqException($"{path}: truncated WAV file (data chunk says {size} bytes, {available} are there)");
                return Samples(bytes.Slice(body, (int)length), format, channels, rate, bits, blockAlign, path);
            }
            long next = (long)body + size + (size & 1);
            if (next > bytes.Length) break;
            pos = (int)next;
        }
        throw new PtqException(haveFormat ? $"{path}: WAV file has no data chunk" : $"{path}: WAV file has no format chunk");
    }

    private static WavAudio Samples(ReadOnlySpan<byte> data, ushort format, int channels, int rate, int bits, int blockAlign, string path)
    {
        bool isFloat = format == FormatFloat;
        if (format != FormatPcm && !isFloat)
            throw new PtqException($"{path}: WAV format code {format} is compressed or unknown; ptq reads integer PCM (1) and IEEE float (3): convert it to PCM first");
        if (isFloat ? bits is not (32 or 64) : bits is not (8 or 16 or 24 or 32))
            throw new PtqException($"{path}: {bits}-bit {(isFloat ? "float" : "PCM")} WAV is not supported (PCM 8/16/24/32, float 32/64)");
        if (channels < 1) throw new PtqException($"{path}: WAV format chunk says {channels} channels");
        if (rate < 1) throw new PtqException($"{path}: WAV format chunk says a sample rate of {rate} Hz");
        int width = bits / 8, frame = width * channels;
        if (blockAlign != frame) throw new PtqException($"{path}: WAV block align {blockAlign} does not match {channels} channel(s) of {bits} bits");
        long frames = data.Length / frame;
        if (frames == 0) throw new PtqException($"{path}: WAV file holds no samples");
        if (frames > MaxFrames) throw new PtqException($"{path}: {frames} frames is more than ptq reads from one file ({MaxFrames}); split the recording");
        var samples = new float[frames];
        double norm = isFloat ? 1.0 : Math.Pow(2, bits - 1);
        for (long i = 0; i < frames; i++)
        {
            double sum = 0;
            for (int c = 0; c < channels; c++)
            {
                var s = data.Slice((int)(i * frame + c * width), width);
                sum += (bits, isFloat) switch
                {
                    (8, false) => s[0] - 128,
                    (16, false) => BinaryPrimitives.ReadInt16LittleEndian(s),
                    (24, false) => (s[0] | s[1] << 8 | (sbyte)s[2] << 16),
                    (32, false) => BinaryPrimitives.ReadInt32LittleEndian(s),
                    (32, true) => BinaryPrimitives.ReadSingleLittleEndian(s),
                    _ => BinaryPrimitives.ReadDoubleLittleEndian(s),
                };
            }
            samples[i] = (float)(sum / channels / norm);
        }
        if (isFloat && samples.Any(v => !float.IsFinite(v))) throw new PtqException($"{path}: WAV file holds NaN or infinite samples");
        return new WavAudio(samples, rate, channels, bits, isFloat);
    }
}
