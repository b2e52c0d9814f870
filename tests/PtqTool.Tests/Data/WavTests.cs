using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.Tests.Cli;

namespace PtqTool.Tests.Data;

public class WavTests
{
    private static readonly InputSpec Dynamic = new("audio", ElementType.Float, [-1, 1, -1]);

    public static IEnumerable<object[]> Formats()
    {
        // (bits, float, extensible, channels): the decoded value is the mean over channels of code / 2^(bits-1), floats as written.
        yield return [8, false, false, 1];
        yield return [16, false, false, 2];
        yield return [24, false, true, 1];
        yield return [32, false, false, 3];
        yield return [32, true, false, 2];
        yield return [64, true, true, 1];
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Every_pcm_and_float_layout_decodes_to_the_channel_mean_of_code_over_two_to_the_bits_less_one(int bits, bool isFloat, bool extensible, int channels)
    {
        var rng = new Random(bits * 10 + channels);
        double max = Math.Pow(2, bits - 1);
        var frames = Enumerable.Range(0, 257).Select(_ => Enumerable.Range(0, channels)
            .Select(_ => isFloat ? rng.NextDouble() * 2 - 1 : Math.Floor(rng.NextDouble() * 2 * max - max)).ToArray()).ToArray();
        frames[0] = Enumerable.Repeat(isFloat ? -1.0 : -max, channels).ToArray();
        frames[1] = Enumerable.Repeat(isFloat ? 1.0 : max - 1, channels).ToArray();
        var audio = WavReader.Decode(WavFiles.Write(frames, 22050, bits, isFloat, extensible, listChunk: true), "x.wav");
        Assert.Equal(22050, audio.SampleRate);
        Assert.Equal(channels, audio.Channels);
        Assert.Equal(frames.Length, audio.Samples.Length);
        for (int i = 0; i < frames.Length; i++)
        {
            // float32 files hold the written values rounded to float; the mean is taken in double, then rounded once.
            double expected = frames[i].Select(v => isFloat && bits == 32 ? (float)v : v).Sum() / channels / (isFloat ? 1 : max);
            Assert.Equal((float)expected, audio.Samples[i]);
        }
        if (!isFloat) Assert.Equal(-1f, audio.Samples[0]);
    }

    public static IEnumerable<object[]> BadFiles()
    {
        var good = WavFiles.Mono16(WavFiles.Clip(100, 1));
        yield return ["not_riff", "RIFX????WAVEfmt "u8.ToArray(), "not a WAV file"];
        yield return ["truncated", good[..(good.Length - 40)], "truncated WAV file (data chunk says 200 bytes"];
        yield return ["adpcm", WavFiles.Write([[1.0], [2.0]], 16000, 16, formatCode: 2), "format code 2 is compressed or unknown"];
        yield return ["no_data", good[..36], "has no data chunk"];
        yield return ["empty", WavFiles.Write([], 16000, 16), "holds no samples"];
        yield return ["bits12", WavFiles.Write([[1.0]], 16000, 16)
            .Select((b, i) => i == 34 ? (byte)12 : b).ToArray(), "12-bit PCM WAV is not supported"];
    }

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void A_bad_wav_is_refused_naming_the_file_and_the_problem(string name, byte[] bytes, string expected)
    {
        string file = Path.Combine(Repo.TempDir(), name + ".wav");
        File.WriteAllBytes(file, bytes);
        var e = Assert.Throws<PtqException>(() => new BatchReader([new SampleFile(file)], AudioInput.For([Dynamic], new AudioFormat(), file), 4) { Strict = true }.Read().ToList());
        Assert.Contains(file, e.Message);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_fixed_length_input_takes_consecutive_windows_scaled_and_the_short_tail_is_dropped_and_noted()
    {
        string dir = Path.Combine(Repo.TempDir(), "wav");
        Directory.CreateDirectory(dir);
        var codes = WavFiles.Clip(1000, 3);
        File.WriteAllBytes(Path.Combine(dir, "a.wav"), WavFiles.Mono16(codes));
        var input = new InputSpec("audio", ElementType.Float, [-1, 400]);
        var reader = new BatchReader(SampleFolder.List(dir), AudioInput.For([input], new AudioFormat(Scale: 32768f), "a.wav"), 8);
        var batch = Assert.Single(reader.Read());
        Assert.Equal([2, 400], batch.Input.Tensors[0].Shape);
        // int16 scale: the samples are the codes themselves.
        Assert.Equal(codes.Take(800).Select(c => (float)c), batch.Input.Tensors[0].Data);
        Assert.Contains("200 samples at the ends of 1 .wav file(s)", Assert.Single(reader.Notes));
    }

    [Fact]
    public void Clips_of_a_symbolic_length_are_batched_with_their_equals_never_padded()
    {
        string dir = Path.Combine(Repo.TempDir(), "wav");
        Directory.CreateDirectory(dir);
        int[] lengths = [300, 500, 300, 300, 500];
        for (int i = 0; i < lengths.Length; i++) File.WriteAllBytes(Path.Combine(dir, $"c{i}.wav"), WavFiles.Mono16(WavFiles.Clip(lengths[i], i)));
        var batches = new BatchReader(SampleFolder.List(dir), AudioInput.For([Dynamic], new AudioFormat(), dir), 2).Read().ToList();
        Assert.Equal([1, 2, 2], batches.Select(b => b.Input.Batch).Order());
        foreach (var b in batches)
            for (int i = 0; i < b.Input.Batch; i++)
            {
                var own = WavReader.Read(b.Files[i]).Samples;
                Assert.Equal([b.Input.Batch, 1, own.Length], b.Input.Tensors[0].Shape);
                Assert.Equal(own, b.Input.Tensors[0].Data.AsSpan(i * own.Length, own.Length).ToArray());
            }
    }

    [Fact]
    public void Rates_that_differ_from_the_first_file_or_from_sample_rate_are_refused()
    {
        string dir = Path.Combine(Repo.TempDir(), "wav");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "a.wav"), WavFiles.Mono16(WavFiles.Clip(300, 1), 16000));
        File.WriteAllBytes(Path.Combine(dir, "b.wav"), WavFiles.Mono16(WavFiles.Clip(300, 2), 22050));
        var files = SampleFolder.List(dir);
        var first = Assert.Throws<PtqException>(() => new BatchReader(files, AudioInput.For([Dynamic], new AudioFormat(), dir), 4).Read().ToList());
        Assert.Contains("b.wav: sampled at 22050 Hz, the first file at 16000 Hz", first.Message);
        var named = Assert.Throws<PtqException>(() => new BatchReader(files, AudioInput.For([Dynamic], new AudioFormat(SampleRate: 22050), dir), 4).Read().ToList());
        Assert.Contains("a.wav: sampled at 16000 Hz; --sample-rate says 22050 Hz", named.Message);
    }

    [Fact]
    public void An_evaluation_folder_at_another_rate_than_the_calibration_clips_is_refused()
    {
        string dir = Repo.TempDir();
        string model = Path.Combine(dir, "audio.onnx");
        OnnxModelFile.Save(WavFiles.AudioModel(), model);
        string calib = Path.Combine(dir, "calib"), eval = Path.Combine(dir, "eval");
        Directory.CreateDirectory(calib);
        Directory.CreateDirectory(eval);
        for (int i = 0; i < 4; i++) File.WriteAllBytes(Path.Combine(calib, $"c{i}.wav"), WavFiles.Mono16(WavFiles.Clip(800, i), 16000));
        for (int i = 0; i < 4; i++) File.WriteAllBytes(Path.Combine(eval, $"e{i}.wav"), WavFiles.Mono16(WavFiles.Clip(800, 10 + i), 22050));
        string output = Path.Combine(dir, "q.onnx");
        var (code, _, err) = CliRunner.Run("quantize", model, "--calib", calib, "--eval", eval, "--out", output, "--quiet");
        Assert.Equal(2, code);
        // Whichever folder is read first sets the rate (the evaluation set is checked before calibration): the other is refused.
        var error = Assert.Single(err.Trim().Split('\n'), l => l.StartsWith("ptq:", StringComparison.Ordinal));
        Assert.True(error.Contains("e0.wav: sampled at 22050 Hz, the first file at 16000 Hz") || error.Contains("c0.wav: sampled at 16000 Hz, the first file at 22050 Hz"), error);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void Wav_samples_are_refused_for_a_model_whose_input_is_not_raw_audio()
    {
        string dir = Repo.TempDir();
        string wavs = Path.Combine(dir, "wav");
        Directory.CreateDirectory(wavs);
        File.WriteAllBytes(Path.Combine(wavs, "a.wav"), WavFiles.Mono16(WavFiles.Clip(300, 1)));
        var (code, _, err) = CliRunner.Run("quantize", Repo.Model("fmnist_cnn"), "--calib", wavs, "--out", Path.Combine(dir, "q.onnx"), "--quiet");
        Assert.Equal(2, code);
        Assert.Contains("a.wav: a .wav sample, but the model's input 'input' float [?, 1, 28, 28] does not take raw audio", err);
    }

    /// <summary>A temporary folder with the raw-audio Conv1d model and a calib/ folder of <paramref name="count"/> clips.</summary>
    private static (string Dir, string Model, string Calib) AudioModelAndClips(int count, Func<int, byte[]> clip)
    {
        string dir = Repo.TempDir();
        string model = Path.Combine(dir, "audio.onnx");
        OnnxModelFile.Save(WavFiles.AudioModel(), model);
        string calib = Path.Combine(dir, "calib");
        Directory.CreateDirectory(calib);
        for (int i = 0; i < count; i++) File.WriteAllBytes(Path.Combine(calib, $"clip{i:D2}.wav"), clip(i));
        return (dir, model, calib);
    }

    [Fact]
    public void Without_sample_rate_the_report_gives_the_rate_the_files_have()
    {
        var (dir, model, calib) = AudioModelAndClips(8, i => WavFiles.Mono16(WavFiles.Clip(900, i), rate: 22050));
        var (_, report, _) = CliRunner.Quantize(dir, "q", model, "--calib", calib, "--batch", "4", "--refine", "off");
        var audio = report["options"]!["audio"]!;
        Assert.Null(audio["sample_rate"]);
        Assert.Equal(22050, audio["files_rate"]!.GetValue<int>());
    }

    [Fact]
    public void Audio_model_quantizes_end_to_end_from_wav_clips_and_every_activation_follows_exact_qdq_semantics()
    {
        var (dir, model, calib) = AudioModelAndClips(24, i => WavFiles.Mono16(WavFiles.Clip(i % 2 == 0 ? 800 : 1200, i)));
        var (quantized, report, _) = CliRunner.Quantize(dir, "q", model, "--calib", calib, "--batch", "8", "--sample-rate", "16000");
        Assert.Equal(24, report["calibration"]!["samples"]!.GetValue<int>());
        // The report says how the clips were read.
        var audio = report["options"]!["audio"]!;
        Assert.Equal(16000, audio["sample_rate"]!.GetValue<int>());
        Assert.Equal(16000, audio["files_rate"]!.GetValue<int>());
        Assert.Equal(1.0, audio["scale"]!.GetValue<double>());
        Assert.Null(audio["window"]);
        var graph = new OnnxGraph(quantized);
        var quantizers = ActivationQdqCheck.Quantizers(graph);
        Assert.Contains(quantizers, q => q.Input[0] == "audio");
        var clip = WavReader.Read(Path.Combine(calib, "clip01.wav")).Samples;
        ActivationQdqCheck.Exact(quantized, new FloatTensor(clip, [1, 1, clip.Length]));
        // The clip's range sets the input scale: 16-bit codes on [-1, 1], so the input quantizer spans no more than that.
        var input = quantizers.Single(q => q.Input[0] == "audio");
        float inputScale = TensorData.ToFloats(graph.Initializer(input.Input[1])!)[0];
        Assert.InRange(inputScale * 255, 0.2f, 2.05f);
    }
}
