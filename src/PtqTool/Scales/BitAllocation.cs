namespace PtqTool.Scales;

/// <summary>One layer's choices: for each bit width, the cost in the budget's units (parameters × bits) and the sensitivity.</summary>
/// <param name="StorageBits">Bits each width occupies when stored (int4 storage holds 2 and 4 bits in 4, the rest in 8); null: the width itself.</param>
public sealed record LayerChoices(string Name, long Parameters, IReadOnlyList<int> Bits, IReadOnlyList<double> Sensitivity, IReadOnlyList<int>? StorageBits = null)
{
    public long Size(int choice) => Parameters * (StorageBits?[choice] ?? Bits[choice]);
}

/// <summary>A bit width per layer, its total size (Σ parameters × bits) and its summed sensitivity.</summary>
public sealed record BitAssignment(IReadOnlyList<int> Choices, long Size, double Sensitivity);

/// <summary>
/// Mixed precision as a multiple-choice knapsack: minimize Σ_i Ω_i(k_i) subject to Σ_i P_i·k_i ≤ S. Solved exactly by
/// dynamic programming over layers on Pareto-pruned states: after each layer only the (size, sensitivity) pairs that
/// no other pair beats on both are kept. Every optimum of a prefix extends to an optimum of the whole problem, so the
/// final states are the exact Pareto frontier: the optimum for every budget at once.
/// </summary>
public static class BitAllocation
{
    /// <summary>The exact frontier, smallest size first (each point: strictly less sensitivity than every smaller one).</summary>
    public static IReadOnlyList<BitAssignment> Frontier(IReadOnlyList<LayerChoices> layers)
    {
        if (layers.Count == 0) return [new BitAssignment([], 0, 0)];
        foreach (var l in layers)
            if (l.Bits.Count == 0 || l.Bits.Count != l.Sensitivity.Count || l.Sensitivity.Any(s => !double.IsFinite(s)))
                throw new PtqException($"layer '{l.Name}': needs one finite sensitivity per bit width");
        // States hold their choices as a linked list (parent + choice) so a state costs O(1) memory.
        var states = new List<State> { new(0, 0, null, -1) };
        foreach (var layer in layers)
        {
            var next = new List<State>(states.Count * layer.Bits.Count);
            foreach (var s in states)
                for (int c = 0; c < layer.Bits.Count; c++)
                    next.Add(new State(s.Size + layer.Size(c), s.Sensitivity + layer.Sensitivity[c], s, c));
            states = Prune(next);
        }
        return states.Select(s => new BitAssignment(Choices(s, layers.Count), s.Size, s.Sensitivity)).ToList();
    }

    /// <summary>The least-sensitivity assignment whose size is at most <paramref name="budget"/>; null when even the smallest does not fit.</summary>
    public static BitAssignment? Best(IReadOnlyList<LayerChoices> layers, long budget) =>
        Frontier(layers).LastOrDefault(a => a.Size <= budget);

    private sealed record State(long Size, double Sensitivity, State? Parent, int Choice);

    private static List<State> Prune(List<State> states)
    {
        states.Sort((a, b) => a.Size != b.Size ? a.Size.CompareTo(b.Size) : a.Sensitivity.CompareTo(b.Sensitivity));
        var kept = new List<State>();
        double best = double.PositiveInfinity;
        foreach (var s in states)
            if (s.Sensitivity < best)
            {
                kept.Add(s);
                best = s.Sensitivity;
            }
        return kept;
    }

    private static int[] Choices(State s, int count)
    {
        var result = new int[count];
        for (int i = count - 1; i >= 0; i--, s = s.Parent!) result[i] = s.Choice;
        return result;
    }
}
