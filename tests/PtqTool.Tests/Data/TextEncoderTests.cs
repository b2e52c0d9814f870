using PtqTool.Data;
using PtqTool.Onnx;

namespace PtqTool.Tests.Data;

public class TextEncoderTests
{
    // A WordPiece vocabulary small enough to tokenize by hand: a token's id is its line number (0-based).
    private static readonly string[] Vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "fox", "##es", "jump", "##ed", "over", "dog", "##s", ".", "brown"];

    private static readonly InputSpec[] BertInputs =
    [
        new("input_ids", ElementType.Int64, [-1, -1]),
        new("attention_mask", ElementType.Int64, [-1, -1]),
        new("token_type_ids", ElementType.Int64, [-1, -1]),
    ];

    private static string VocabFile()
    {
        string path = Path.Combine(Repo.TempDir(), "vocab.txt");
        File.WriteAllLines(path, Vocabulary);
        return path;
    }

    [Fact]
    public void Sentences_tokenize_as_wordpiece_does_by_hand()
    {
        var encoder = TextEncoder.Create(VocabFile(), null, lowercase: true, BertInputs, "bert.onnx");
        // [CLS] the quick fox ##es jump ##ed over the dog ##s . [SEP]
        Assert.Equal([2, 5, 6, 7, 8, 9, 10, 11, 5, 12, 13, 14, 3], encoder.Tokens("The quick foxes jumped over the dogs."));
        // A word with no piece in the vocabulary is [UNK].
        Assert.Equal([2, 5, 15, 1, 3], encoder.Tokens("the brown zebra"));
        var feed = encoder.Encode("The quick foxes jumped over the dogs.");
        Assert.Equal([1, 13], feed["input_ids"].Shape);
        Assert.All(feed["attention_mask"].Data, v => Assert.Equal(1f, v));
        Assert.All(feed["token_type_ids"].Data, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void A_sequence_length_pads_with_a_masked_pad_token_and_truncates_to_it()
    {
        var encoder = TextEncoder.Create(VocabFile(), 8, lowercase: true, BertInputs, "bert.onnx");
        var feed = encoder.Encode("the quick fox");
        Assert.Equal([2f, 5, 6, 7, 3, 0, 0, 0], feed["input_ids"].Data);
        Assert.Equal([1f, 1, 1, 1, 1, 0, 0, 0], feed["attention_mask"].Data);
        var longer = encoder.Encode("The quick foxes jumped over the dogs.");
        Assert.Equal([1, 8], longer["input_ids"].Shape);
        Assert.Equal(2f, longer["input_ids"].Data[0]);
        Assert.All(longer["attention_mask"].Data, v => Assert.Equal(1f, v));
    }

    [Fact]
    public void Inputs_it_cannot_fill_and_disagreeing_lengths_are_refused()
    {
        string vocab = VocabFile();
        var e = Assert.Throws<PtqException>(() => TextEncoder.Create(vocab, null, true, [.. BertInputs, new InputSpec("pixel_values", ElementType.Float, [-1, 3])], "m.onnx"));
        Assert.Contains("m.onnx: input 'pixel_values'", e.Message);
        e = Assert.Throws<PtqException>(() => TextEncoder.Create(vocab, 64, true, [new InputSpec("input_ids", ElementType.Int64, [-1, 128])], "m.onnx"));
        Assert.Contains("fixed sequence of 128", e.Message);
        e = Assert.Throws<PtqException>(() => TextEncoder.Create(Path.Combine(Repo.TempDir(), "none.txt"), null, true, BertInputs, "m.onnx"));
        Assert.Contains("none.txt: vocabulary file not found", e.Message);
    }

    [Fact]
    public void Text_files_list_one_sample_per_nonblank_line()
    {
        string path = Path.Combine(Repo.TempDir(), "s.txt");
        File.WriteAllText(path, "first one\n\n  second  \n");
        var samples = TextSamples.List(path);
        Assert.Equal(["first one", "second"], samples.Select(s => s.Text));
        Assert.Equal($"{path}:3", samples[1].Path);
        File.WriteAllText(path, "\n \n");
        Assert.Contains("no sentences", Assert.Throws<PtqException>(() => TextSamples.List(path)).Message);
    }
}
