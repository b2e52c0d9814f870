using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite.Handlers;

/// <summary>
/// Relu and Clip. Under asymmetric activations a Relu whose input comes only from a quantized node is folded: the node
/// is removed and the producer's output takes the Relu's range (the quantizer's lower end at 0 clips exactly as Relu
/// does). Otherwise the activation's input and output get Q/DQ.
/// </summary>
public sealed class ActivationHandler : IOpHandler
{
    public IReadOnlyCollection<string> OpTypes => ["Relu", "Clip"];

    public void Plan(NodeProto node, PlanBuilder plan)
    {
        var producer = plan.Graph.Producer(node.Input[0]);
        bool foldable = node.OpType == "Relu" && !plan.Options.SymmetricActivations && producer is not null
                        && plan.IsQuantized(producer) && plan.Graph.Consumers(node.Input[0]).Count == 1
                        && !plan.Graph.IsGraphOutput(node.Input[0]) && !plan.Graph.IsGraphOutput(node.Output[0]);
        if (foldable)
        {
            plan.FoldRelu(node);
            return;
        }
        plan.QuantizeInput(node, 0);
        plan.QuantizeOutput(node, 0);
    }
}
