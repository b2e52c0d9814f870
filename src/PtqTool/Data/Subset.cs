namespace PtqTool.Data;

/// <summary>Deterministic subsets of a file list.</summary>
public static class Subset
{
    /// <summary>At most <paramref name="count"/> items spread evenly over the list (every class of a sorted ImageFolder stays represented).</summary>
    public static List<T> Spread<T>(List<T> items, int count)
    {
        if (count < 1) throw new PtqException($"--limit: {count} must be at least 1");
        if (count >= items.Count) return items;
        var picked = new List<T>(count);
        for (int i = 0; i < count; i++) picked.Add(items[(int)((long)i * items.Count / count)]);
        return picked;
    }
}
