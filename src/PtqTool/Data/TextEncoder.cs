using Microsoft.ML.Tokenizers;
using PtqTool.Onnx;

namespace PtqTool.Data;

/// <summary>
/// Turns a sentence into the int64 inputs of a BERT-class encoder with Microsoft.ML.Tokenizers' WordPiece
/// BertTokenizer: input_ids ([CLS] tokens [SEP]), attention_mask (1 per token) and token_type_ids (0), each matched to
/// the model input of that role by name. With a sequence length (--seq-len, or the model's fixed one) sentences are
/// truncated and padded to it, the mask marking the padding; without, each keeps its own length and batches are formed
/// of equal lengths (<see cref="BatchReader"/>).
/// </summary>
public sealed class TextEncoder
{
    public enum Role { Ids, Mask, TokenTypes }

    private readonly BertTokenizer _tokenizer;
    private readonly IReadOnlyList<(InputSpec Input, Role Role)> _inputs;

    /// <summary>Tokens per sequence (padded and truncated to), or null for each sentence's own length.</summary>
    public int? SequenceLength { get; }

    /// <summary>Most tokens a sentence keeps without a sequence length (BERT's position table).</summary>
    public const int MaxTokens = 512;

    private TextEncoder(BertTokenizer tokenizer, IReadOnlyList<(InputSpec, Role)> inputs, int? sequenceLength)
    {
        _tokenizer = tokenizer;
        _inputs = inputs;
        SequenceLength = sequenceLength;
    }

    public static TextEncoder Create(string vocabPath, int? sequenceLength, bool lowercase, IReadOnlyList<InputSpec> inputs, string modelPath)
    {
        if (!File.Exists(vocabPath)) throw new PtqException($"{vocabPath}: vocabulary file not found (--vocab: a WordPiece vocab.txt, one token a line)");
        if (sequenceLength is < 2 or > 8192) throw new PtqException($"--seq-len: {sequenceLength} must be in 2..8192");
        var roles = new List<(InputSpec, Role)>();
        foreach (var input in inputs)
        {
            var role = RoleOf(input.Name) ?? throw new PtqException($"{modelPath}: input '{input.Name}' is not input_ids, attention_mask or token_type_ids: text samples cannot fill it (give .npz samples instead)");
            if (input.IsFloat || input.DeclaredShape.Length != 2)
                throw new PtqException($"{modelPath}: input '{input.Name}' is {input.TypeName} {input.ShapeText}; text samples fill integer [batch, sequence] inputs");
            int fixedLength = input.DeclaredShape[1];
            if (fixedLength > 0 && sequenceLength is int n && n != fixedLength)
                throw new PtqException($"--seq-len: {n}, but {modelPath} input '{input.Name}' has a fixed sequence of {fixedLength}");
            if (fixedLength > 0) sequenceLength = fixedLength;
            roles.Add((input, role));
        }
        if (!roles.Any(r => r.Item2 == Role.Ids)) throw new PtqException($"{modelPath}: no input_ids input among {string.Join(", ", inputs.Select(i => i.Name))}: text samples need one");
        BertTokenizer tokenizer;
        try
        {
            tokenizer = BertTokenizer.Create(vocabPath, new BertOptions { LowerCaseBeforeTokenization = lowercase });
        }
        catch (Exception e) when (e is not PtqException)
        {
            throw new PtqException($"{vocabPath}: not a WordPiece vocabulary ({e.Message})", inner: e);
        }
        return new TextEncoder(tokenizer, roles, sequenceLength);
    }

    /// <summary>The role of an input by its name (input_ids, attention_mask, token_type_ids, and their common spellings).</summary>
    public static Role? RoleOf(string name)
    {
        string n = name.ToLowerInvariant();
        if (n.Contains("token_type") || n.Contains("segment")) return Role.TokenTypes;
        if (n.Contains("mask")) return Role.Mask;
        if (n.Contains("input_ids") || n is "ids" or "input" or "tokens" or "input_word_ids") return Role.Ids;
        return null;
    }

    /// <summary>The sentence's token ids, [CLS] … [SEP], truncated to the sequence length.</summary>
    public IReadOnlyList<int> Tokens(string text) =>
        _tokenizer.EncodeToIds(text, SequenceLength ?? MaxTokens, addSpecialTokens: true, out _, out _);

    /// <summary>One sample: every input of the model, [1, length].</summary>
    public ModelFeed Encode(string text)
    {
        var tokens = Tokens(text);
        int length = SequenceLength ?? tokens.Count;
        var ids = new float[length];
        var mask = new float[length];
        for (int i = 0; i < length; i++)
        {
            ids[i] = i < tokens.Count ? tokens[i] : _tokenizer.PaddingTokenId;
            mask[i] = i < tokens.Count ? 1 : 0;
        }
        var tensors = _inputs.Select(r => new FloatTensor(r.Role switch
        {
            Role.Ids => ids,
            Role.Mask => mask,
            _ => new float[length],
        }, [1, length])).ToList();
        return new ModelFeed(_inputs.Select(r => (string?)r.Input.Name).ToList(), tensors);
    }
}
