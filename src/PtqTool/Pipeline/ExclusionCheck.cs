using PtqTool.Onnx;

namespace PtqTool.Pipeline;

/// <summary>--exclude entries must name a node or an op type of the model: a typo would silently quantize what the user meant to keep.</summary>
public static class ExclusionCheck
{
    public static void Verify(OnnxGraph graph, IReadOnlyList<string> exclude)
    {
        var names = graph.Graph.Node.Select(n => n.Name).Where(n => n.Length > 0).ToHashSet(StringComparer.Ordinal);
        var ops = graph.Graph.Node.Select(n => n.OpType).ToHashSet(StringComparer.Ordinal);
        foreach (var e in exclude)
        {
            if (names.Contains(e) || ops.Contains(e)) continue;
            var near = names.Concat(ops).OrderBy(c => Distance(c, e)).ThenBy(c => c, StringComparer.Ordinal).Take(3).ToList();
            throw new PtqException($"--exclude: '{e}' is neither a node name nor an op type of the model" +
                (near.Count > 0 ? $"; nearest: {string.Join(", ", near.Select(n => $"'{n}'"))}" : "") + " (ptq inspect lists them)");
        }
    }

    /// <summary>Levenshtein distance, case-insensitive (suggestions only).</summary>
    public static int Distance(string a, string b)
    {
        a = a.ToLowerInvariant();
        b = b.ToLowerInvariant();
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}
