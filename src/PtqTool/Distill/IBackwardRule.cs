using PtqTool.Onnx.Proto;

namespace PtqTool.Distill;

/// <summary>Emits ONNX ops computing the gradients of a node's inputs from the gradient of its output.</summary>
public interface IBackwardRule
{
    IReadOnlyCollection<string> OpTypes { get; }

    /// <returns>Input index → gradient tensor, for the inputs that carry gradient (constants are skipped by the caller).</returns>
    IReadOnlyDictionary<int, string> Backward(NodeProto node, string outputGradient, GradientContext context, Func<int, bool> needsGradient);
}
