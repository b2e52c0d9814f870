using Google.Protobuf;
using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Tests.Pipeline;

/// <summary>What learned rounding may change in a model, checked against the nearest-rounded model of the same run.</summary>
public static class LearnedCodes
{
    /// <summary>
    /// Asserts that only the weight code tensors named (weight + "_quantized") differ, each code by at most one step and
    /// within [−<paramref name="maxCode"/>, <paramref name="maxCode"/>]; scales, zero points, biases and activation
    /// parameters are byte-identical.
    /// </summary>
    /// <returns>How many codes changed.</returns>
    public static long AssertOnlyCodesMoveByOneStep(ModelProto nearest, ModelProto learned, IEnumerable<string> weights, int maxCode)
    {
        var codes = weights.Select(w => w + "_quantized").ToHashSet();
        var before = nearest.Graph.Initializer.ToDictionary(t => t.Name);
        long changed = 0;
        foreach (var t in learned.Graph.Initializer)
        {
            var a = before[t.Name];
            if (!codes.Contains(t.Name))
            {
                Assert.Equal(a.ToByteArray(), t.ToByteArray());
                continue;
            }
            var x = TensorData.ToFloats(a);
            var y = TensorData.ToFloats(t);
            Assert.All(x.Zip(y), p => Assert.True(Math.Abs(p.First - p.Second) <= 1, $"{t.Name}: code {p.First} became {p.Second}"));
            Assert.All(y, v => Assert.InRange(v, -maxCode, maxCode));
            changed += x.Zip(y).Count(p => p.First != p.Second);
        }
        return changed;
    }
}
