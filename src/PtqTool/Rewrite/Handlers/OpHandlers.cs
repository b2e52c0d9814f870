namespace PtqTool.Rewrite.Handlers;

/// <summary>The registry: op type → handler.</summary>
public static class OpHandlers
{
    private static readonly Dictionary<string, IOpHandler> ByOp = Build(
        new WeightedOpHandler(), new ElementwiseHandler(), new ConcatHandler(),
        new PassThroughHandler(), new AveragingHandler(), new ActivationHandler(), new FixedRangeHandler());

    public static IOpHandler? For(string opType) => ByOp.GetValueOrDefault(opType);

    public static IEnumerable<string> SupportedOps => ByOp.Keys.Order(StringComparer.Ordinal);

    private static Dictionary<string, IOpHandler> Build(params IOpHandler[] handlers)
    {
        var d = new Dictionary<string, IOpHandler>(StringComparer.Ordinal);
        foreach (var h in handlers) foreach (var op in h.OpTypes) d.Add(op, h);
        return d;
    }
}
