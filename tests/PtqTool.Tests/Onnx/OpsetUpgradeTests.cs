using PtqTool.Onnx;
using PtqTool.Onnx.Proto;
using PtqTool.Tests.Distill;

namespace PtqTool.Tests.Onnx;

/// <summary>
/// Every rule of <see cref="OpsetUpgrade"/> on a small graph at the old opset: ONNX Runtime runs the old model and the
/// upgraded one, and the outputs must agree, while the upgraded graph must hold only opset-13 forms.
/// </summary>
public class OpsetUpgradeTests
{
    private static AttributeProto Ints(string n, params long[] v) => NodeAttributes.Ints(n, v);

    public static IEnumerable<object[]> Cases() =>
    [
        ["Softmax over axis 1 of a rank-3 input (coerced to 2-D before 13)", 11, new[] { 2, 3, 4 }],
        ["LogSoftmax, default axis, rank 4", 9, new[] { 2, 3, 2, 2 }],
        ["Softmax on the last axis (no reshape needed)", 11, new[] { 2, 5 }],
        ["Clip with min/max attributes", 9, new[] { 2, 6 }],
        ["Pad with pads/value attributes", 9, new[] { 1, 2, 3, 3 }],
        ["Split with a split attribute", 11, new[] { 2, 6 }],
        ["Squeeze and Unsqueeze with axes attributes", 11, new[] { 2, 1, 3 }],
        ["ReduceSum with axes", 11, new[] { 2, 3, 4 }],
        ["Slice with starts/ends attributes", 9, new[] { 4, 6 }],
        ["TopK with a k attribute", 9, new[] { 2, 7 }],
        ["Dropout", 9, new[] { 2, 5 }],
        ["BatchNormalization with spatial", 7, new[] { 2, 3, 4, 4 }],
        ["Upsample nearest, scales attribute", 7, new[] { 1, 2, 3, 3 }],
        ["Upsample linear, scales input", 9, new[] { 1, 2, 3, 3 }],
        ["Resize-10 nearest", 10, new[] { 1, 2, 3, 3 }],
    ];

    private static ModelProto Build(string name, int opset, int[] shape)
    {
        var m = new TinyModels(shape, seed: name.Length, opset);
        string x = "x", y = name switch
        {
            var s when s.StartsWith("Softmax over") => m.Op("Softmax", [x], NodeAttributes.Int("axis", 1)),
            var s when s.StartsWith("LogSoftmax") => m.Op("LogSoftmax", [x]),
            var s when s.StartsWith("Softmax on the last") => m.Op("Softmax", [x], NodeAttributes.Int("axis", 1)),
            var s when s.StartsWith("Clip") => m.Op("Clip", [x], NodeAttributes.Float("min", -0.2f), NodeAttributes.Float("max", 0.3f)),
            var s when s.StartsWith("Pad") => m.Op("Pad", [x], Ints("pads", 0, 0, 1, 2, 0, 0, 2, 1), NodeAttributes.Float("value", 0.5f)),
            var s when s.StartsWith("Split") => m.Op("Concat", Split(m, x), NodeAttributes.Int("axis", 1)),
            var s when s.StartsWith("Squeeze") => m.Op("Unsqueeze", [m.Op("Squeeze", [x], Ints("axes", 1))], Ints("axes", 0)),
            var s when s.StartsWith("ReduceSum") => m.Op("ReduceSum", [x], Ints("axes", 1), NodeAttributes.Int("keepdims", 0)),
            var s when s.StartsWith("Slice") => m.Op("Slice", [x], Ints("starts", 1, 0), Ints("ends", 3, 5), Ints("axes", 0, 1)),
            var s when s.StartsWith("TopK") => TopK(m, x),
            var s when s.StartsWith("Dropout") => m.Op("Dropout", [x], NodeAttributes.Float("ratio", 0.3f)),
            var s when s.StartsWith("BatchNormalization") => m.Op("BatchNormalization",
                [x, m.Const([3], () => 1.5f), m.Const([3], () => 0.1f), m.Const([3], () => 0.2f), m.Const([3], () => 0.7f)],
                NodeAttributes.Int("spatial", 1), NodeAttributes.Float("epsilon", 1e-5f)),
            var s when s.StartsWith("Upsample nearest") => m.Op("Upsample", [x], NodeAttributes.String("mode", "nearest"), NodeAttributes.Floats("scales", 1, 1, 2, 3)),
            var s when s.StartsWith("Upsample linear") => m.Op("Upsample", [x, m.ConstValues([4], [1, 1, 2, 2])], NodeAttributes.String("mode", "linear")),
            _ => m.Op("Resize", [x, m.ConstValues([4], [1, 1, 2, 3])], NodeAttributes.String("mode", "nearest")),
        };
        return m.Finish(y);
    }

    private static string TopK(TinyModels m, string x)
    {
        m.Model.Graph.Node.Add(NodeAttributes.Node("TopK", "topk", [x], ["top_values", "top_indices"], NodeAttributes.Int("k", 3)));
        return m.Op("Add", ["top_values", m.Op("Cast", ["top_indices"], NodeAttributes.Int("to", ElementType.Float))]);
    }

    private static string[] Split(TinyModels m, string x)
    {
        string a = "split_a", b = "split_b";
        m.Model.Graph.Node.Add(NodeAttributes.Node("Split", "split", [x], [a, b], NodeAttributes.Int("axis", 1), Ints("split", 2, 4)));
        return [b, m.Op("Neg", [a])];
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void An_upgraded_graph_computes_what_the_old_one_did(string name, int opset, int[] shape)
    {
        var old = Build(name, opset, shape);
        var upgraded = new OnnxGraph(old.Clone());
        var summary = OpsetUpgrade.ToOpset13(upgraded, name);
        Assert.Equal(13, upgraded.OpsetVersion());
        Assert.True(summary.Upgraded);
        foreach (var n in upgraded.Graph.Node)
        {
            Assert.NotEqual("Upsample", n.OpType);
            Assert.NotEqual("Dropout", n.OpType);
            if (n.OpType is "Clip" or "Pad" or "Split" or "Squeeze" or "Unsqueeze" or "ReduceSum" or "Slice" or "TopK")
                Assert.DoesNotContain(n.Attribute, a => a.Name is "min" or "max" or "pads" or "value" or "split" or "axes" or "starts" or "ends" or "k");
        }
        var rng = new Random(shape.Sum());
        var input = new FloatTensor(Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray(), shape);
        using var before = OrtRunner.FromModel(old);
        using var after = OrtRunner.FromModel(upgraded.Model);
        var a = before.Run(input);
        var b = after.Run(input);
        foreach (var output in before.OutputNames)
        {
            Assert.Equal(a[output].Shape, b[output].Shape);
            for (int i = 0; i < a[output].Data.Length; i++) Assert.Equal(a[output].Data[i], b[output].Data[i], 5e-6f);
        }
    }

    [Fact]
    public void Models_older_than_opset_7_and_subgraphs_are_refused_naming_why()
    {
        var m = Build("Clip", 9, [2, 6]);
        m.OpsetImport[0].Version = 6;
        Assert.Contains("opset 6", Assert.Throws<PtqException>(() => OpsetUpgrade.ToOpset13(new OnnxGraph(m), "old.onnx")).Message);
        var sub = Build("Dropout", 9, [2, 5]);
        sub.Graph.Node[0].Attribute.Add(new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = new GraphProto() });
        Assert.Contains("subgraph", Assert.Throws<PtqException>(() => OpsetUpgrade.ToOpset13(new OnnxGraph(sub), "sub.onnx")).Message);
    }
}
