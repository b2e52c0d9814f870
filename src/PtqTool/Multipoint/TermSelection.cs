namespace PtqTool.Multipoint;

/// <summary>One thing a second term can be bought for: some rows of one layer, at a cost in multiply-adds per sample.</summary>
/// <param name="Value">What it buys: the fall of the layer's output error, as a fraction of the layer's output energy.</param>
public sealed record TermCandidate(int Layer, int[] Rows, long Macs, double Value)
{
    public double ValuePerMac => Value / Math.Max(1, Macs);
}

/// <summary>
/// Spends a multiply-add budget on second terms: the candidates with the best value per added MAC first, each taken
/// when it still fits (a cheaper one further down may fill what is left). Candidates that buy nothing are never taken.
/// </summary>
public static class TermSelection
{
    public static IReadOnlyList<TermCandidate> Choose(IEnumerable<TermCandidate> candidates, long budgetMacs)
    {
        var chosen = new List<TermCandidate>();
        long left = budgetMacs;
        foreach (var c in candidates.Where(c => c.Value > 0).OrderByDescending(c => c.ValuePerMac).ThenBy(c => c.Layer).ThenBy(c => c.Rows.FirstOrDefault()))
        {
            if (c.Macs > left) continue;
            chosen.Add(c);
            left -= c.Macs;
        }
        return chosen;
    }
}
