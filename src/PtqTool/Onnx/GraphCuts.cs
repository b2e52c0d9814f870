using PtqTool.Onnx.Proto;

namespace PtqTool.Onnx;

/// <summary>
/// The single-tensor cuts of a graph in a topological order: the places between two consecutive nodes where exactly
/// one non-constant tensor is live (produced before, or a graph input, and read after), so everything after depends on
/// everything before through that one tensor. A residual block's input is such a cut; a tensor inside the block is
/// not (the skip path is live beside it). Tensors named as side tensors (an attention mask computed from a graph
/// input, live across every layer of a transformer) do not count: where one other tensor is live beside them, that is
/// a cut too.
/// </summary>
public static class GraphCuts
{
    /// <summary>One cut: after node <paramref name="After"/> of the order, <paramref name="Tensor"/> alone is live.</summary>
    public sealed record Cut(int After, string Tensor);

    /// <param name="order">The graph's nodes in a topological order.</param>
    /// <param name="side">Tensors that may be live beside the cut's one tensor.</param>
    public static IReadOnlyList<Cut> Find(OnnxGraph graph, IReadOnlyList<NodeProto> order, ISet<string>? side = null)
    {
        int n = order.Count;
        var produced = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var input in graph.DataInputs()) produced[input.Name] = -1;
        for (int i = 0; i < n; i++)
            foreach (var o in order[i].Output) if (o.Length > 0) produced[o] = i;
        var lastRead = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < n; i++)
            foreach (var t in order[i].Input) if (t.Length > 0 && produced.ContainsKey(t)) lastRead[t] = i;
        foreach (var o in graph.Graph.Output) if (produced.ContainsKey(o.Name)) lastRead[o.Name] = n;

        // Live at boundary b (between nodes b and b + 1) when produced at p ≤ b and read at r > b. Two difference
        // arrays give each boundary the number of live tensors and the sum of their ids: where the count is 1 the sum
        // is the one tensor's id. Tensors computed from constants alone are constants, never live.
        var ids = new List<string>();
        var count = new long[n + 1];
        var idSum = new long[n + 1];
        var mainCount = new long[n + 1];
        var mainIdSum = new long[n + 1];
        var constant = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < n; i++)
            if (order[i].Input.All(t => t.Length == 0 || (!produced.ContainsKey(t) || constant.Contains(t))) && order[i].Input.Any(t => t.Length > 0) || order[i].OpType == "Constant")
                foreach (var o in order[i].Output) constant.Add(o);
        foreach (var (tensor, p) in produced)
        {
            if (constant.Contains(tensor) || !lastRead.TryGetValue(tensor, out int r) || r <= p) continue;
            int id = ids.Count;
            ids.Add(tensor);
            int from = Math.Max(p, 0);
            count[from]++; count[Math.Min(r, n)]--;
            idSum[from] += id; idSum[Math.Min(r, n)] -= id;
            if (side is not null && side.Contains(tensor)) continue;
            mainCount[from]++; mainCount[Math.Min(r, n)]--;
            mainIdSum[from] += id; mainIdSum[Math.Min(r, n)] -= id;
        }
        var cuts = new List<Cut>();
        long live = 0, sum = 0, mainLive = 0, mainSum = 0;
        for (int b = 0; b < n - 1; b++)
        {
            live += count[b];
            sum += idSum[b];
            mainLive += mainCount[b];
            mainSum += mainIdSum[b];
            if (live == 1) cuts.Add(new Cut(b, ids[(int)sum]));
            else if (mainLive == 1) cuts.Add(new Cut(b, ids[(int)mainSum]));
        }
        return cuts;
    }
}
