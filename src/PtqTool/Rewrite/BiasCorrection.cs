using PtqTool.Onnx;
using PtqTool.Onnx.Proto;

namespace PtqTool.Rewrite;

/// <summary>
/// Empirical bias correction (Nagel et al., "Data-Free Quantization", 2019; NNCF's default "fast bias correction"):
/// the weight error ΔW = Ŵ − W shifts output channel o by Σ ΔW[o,·]·E[x] on average, where E[x] is the per-channel mean
/// of the layer's FP32 input over the calibration data. Subtracting that shift from the bias removes the systematic part
/// of the error, which clipping losses make non-zero. Padding borders are ignored.
/// </summary>
public static class BiasCorrection
{
    /// <returns>The corrected bias, or null when the node's layout is not one this handles (ConvTranspose, MatMul).</returns>
    public static float[]? Correct(NodeProto node, float[] weights, int[] shape, QuantizedWeight quantized, float[] bias, double[] inputMeans)
    {
        var shift = node.OpType switch
        {
            "Conv" => ConvShift(node, weights, shape, quantized, inputMeans),
            "Gemm" => GemmShift(node, weights, shape, quantized, inputMeans),
            _ => null,
        };
        if (shift is null || shift.Length != bias.Length) return null;
        return bias.Select((b, o) => (float)(b - shift[o])).ToArray();
    }

    private static double Error(float[] w, QuantizedWeight q, int index, int channel) =>
        q.Values[index] * (double)q.Scales[q.Axis < 0 ? 0 : channel] - w[index];

    private static double[]? ConvShift(NodeProto node, float[] w, int[] shape, QuantizedWeight q, double[] mean)
    {
        int outC = shape[0], perGroupIn = shape[1], k = w.Length / (outC * perGroupIn);
        int groups = (int)NodeAttributes.GetInt(node, "group", 1);
        if (mean.Length != perGroupIn * groups || outC % groups != 0) return null;
        int outPerGroup = outC / groups;
        var shift = new double[outC];
        for (int o = 0; o < outC; o++)
        {
            int firstIn = o / outPerGroup * perGroupIn;
            double s = 0;
            for (int c = 0; c < perGroupIn; c++)
            {
                double e = 0;
                for (int j = 0; j < k; j++) e += Error(w, q, (o * perGroupIn + c) * k + j, o);
                s += e * mean[firstIn + c];
            }
            shift[o] = s;
        }
        return shift;
    }

    private static double[]? GemmShift(NodeProto node, float[] w, int[] shape, QuantizedWeight q, double[] mean)
    {
        bool transB = NodeAttributes.GetInt(node, "transB", 0) == 1;
        int n = transB ? shape[0] : shape[1], kDim = transB ? shape[1] : shape[0];
        if (mean.Length != kDim) return null;
        var shift = new double[n];
        for (int o = 0; o < n; o++)
            for (int i = 0; i < kDim; i++)
            {
                int index = transB ? o * kDim + i : i * n + o;
                shift[o] += Error(w, q, index, o) * mean[i];
            }
        return shift;
    }
}
