using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite.Handlers;

/// <summary>Decides how one kind of node is quantized. Adding an op is adding one handler to <see cref="OpHandlers"/>.</summary>
public interface IOpHandler
{
    IReadOnlyCollection<string> OpTypes { get; }
    void Plan(NodeProto node, PlanBuilder plan);
}
