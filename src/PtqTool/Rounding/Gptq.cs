using System.Numerics.Tensors;
using PtqTool.Rewrite;

namespace PtqTool.Rounding;

/// <summary>
/// A GPTQ-style solver (Frantar et al. 2023, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
/// Transformers") for a MatMul weight W [K, N] (y = x·W) in MatMulNBits' 4-bit blocks. With H = Σ xᵀx over the
/// calibration rows, the error Σ‖x(W − Q)‖² = tr((W − Q)ᵀ H (W − Q)) is reduced by quantizing W one input row k at a
/// time and spreading that row's rounding error over the rows not yet quantized, through the upper Cholesky factor U
/// of H⁻¹ (H⁻¹ = UᵀU): e = (W[k,·] − Q[k,·]) / U[k,k], W[j,·] −= U[k,j]·e for j &gt; k. A block's scales (max|w| / 7
/// per column, as <see cref="MatMulNBits.Pack"/>) are taken from the updated rows when the solver enters the block.
/// H is damped by <c>damp</c>·mean(diag H); inputs that are always zero (diag 0) get weight 0. With H = I no error
/// moves and the result is nearest rounding (tested).
/// </summary>
public static class Gptq
{
    public const double DefaultDamping = 0.01;

    /// <param name="w">Row-major [K, N].</param>
    /// <param name="gram">Row-major [K, K]: Σ xᵀx.</param>
    public static PackedWeight Pack(ReadOnlySpan<float> w, int k, int n, ReadOnlySpan<double> gram, int blockSize = MatMulNBits.BlockSize, double damp = DefaultDamping)
    {
        if (gram.Length != k * k) throw new ArgumentException($"the Gram matrix has {gram.Length} values, not {k}×{k}");
        var work = w.ToArray();
        var h = gram.ToArray();
        double mean = 0;
        for (int i = 0; i < k; i++) mean += h[i * k + i];
        mean = mean > 0 ? mean / k : 1;
        for (int i = 0; i < k; i++)
        {
            if (h[i * k + i] <= 0)
            {
                // A dead input: its row of W never reaches the output; quantize it to zero.
                for (int j = 0; j < k; j++) h[i * k + j] = h[j * k + i] = 0;
                h[i * k + i] = mean;
                work.AsSpan(i * n, n).Clear();
            }
            h[i * k + i] += damp * mean;
        }
        var u = UpperCholeskyOfInverse(h, k);  // h is reused for U

        int blocks = (k + blockSize - 1) / blockSize;
        var packed = new byte[n * blocks * blockSize / 2];
        var scales = new float[n * blocks];
        var error = new float[n];
        for (int row = 0; row < k; row++)
        {
            int b = row / blockSize;
            if (row % blockSize == 0)
                for (int col = 0; col < n; col++)
                {
                    float max = 0;
                    for (int i = row; i < Math.Min(k, row + blockSize); i++) max = Math.Max(max, Math.Abs(work[i * n + col]));
                    scales[col * blocks + b] = MatMulNBits.Scale(max);
                }
            double pivot = u[row * k + row];
            for (int col = 0; col < n; col++)
            {
                float s = scales[col * blocks + b], v = work[row * n + col];
                int q = MatMulNBits.Code(v, s);
                MatMulNBits.Store(packed, blocks, blockSize, col, row, q);
                error[col] = (float)((v - (q - MatMulNBits.ZeroCode) * s) / pivot);
            }
            for (int later = row + 1; later < k; later++)
            {
                float factor = (float)u[row * k + later];
                if (factor != 0) TensorPrimitives.MultiplyAdd(error, -factor, work.AsSpan(later * n, n), work.AsSpan(later * n, n));
            }
        }
        // A partial last block's missing rows are code 8 (zero), as MatMulNBits.Pack pads them.
        for (int row = k; row < blocks * blockSize; row++)
            for (int col = 0; col < n; col++) MatMulNBits.Store(packed, blocks, blockSize, col, row, MatMulNBits.ZeroCode);
        return new PackedWeight(k, n, blockSize, packed, scales);
    }

    /// <summary>tr((W − Ŵ)ᵀ H (W − Ŵ)): the summed squared output error of Ŵ on the rows whose Gram is H.</summary>
    public static double OutputError(ReadOnlySpan<float> w, ReadOnlySpan<float> approximation, int k, int n, ReadOnlySpan<double> gram)
    {
        var d = new double[k * n];
        for (int i = 0; i < d.Length; i++) d[i] = w[i] - approximation[i];
        double total = 0;
        var hd = new double[n];
        for (int a = 0; a < k; a++)
        {
            Array.Clear(hd);
            for (int b = 0; b < k; b++)
            {
                double g = gram[a * k + b];
                if (g == 0) continue;
                for (int c = 0; c < n; c++) hd[c] += g * d[b * n + c];
            }
            for (int c = 0; c < n; c++) total += d[a * n + c] * hd[c];
        }
        return total;
    }

    /// <summary>U upper triangular with UᵀU = H⁻¹, row-major [K, K], for a symmetric positive definite H (overwritten: U is returned in its place).</summary>
    public static double[] UpperCholeskyOfInverse(double[] h, int k)
    {
        // Two K×K buffers in turn: L = chol(H) in b; M = L⁻¹ in a; H⁻¹ = MᵀM in b; L₂ = chol(H⁻¹) in a; U = L₂ᵀ in a.
        double[] a = h, b = new double[k * k];
        Cholesky(a, b, k);
        // M = L⁻¹ (lower), row by row: M[i,·] = (e_i − Σ_{p<i} L[i,p]·M[p,·]) / L[i,i].
        Array.Clear(a);
        for (int i = 0; i < k; i++)
        {
            var row = a.AsSpan(i * k, k);
            row[i] = 1;
            for (int p = 0; p < i; p++)
            {
                double f = b[i * k + p];
                if (f != 0) TensorPrimitives.MultiplyAdd(a.AsSpan(p * k, p + 1), -f, row[..(p + 1)], row[..(p + 1)]);
            }
            TensorPrimitives.Divide(row[..(i + 1)], b[i * k + i], row[..(i + 1)]);
        }
        // H⁻¹ = Mᵀ M: Σ_p of M[p,·]ᵀ M[p,·], whose row p is zero beyond p.
        Array.Clear(b);
        for (int p = 0; p < k; p++)
        {
            var mp = a.AsSpan(p * k, p + 1);
            for (int c = 0; c <= p; c++)
            {
                double f = mp[c];
                if (f != 0) TensorPrimitives.MultiplyAdd(mp, f, b.AsSpan(c * k, p + 1), b.AsSpan(c * k, p + 1));
            }
        }
        // H⁻¹ = L₂L₂ᵀ with L₂ lower, so U = L₂ᵀ.
        Array.Clear(a);
        Cholesky(b, a, k);
        for (int i = 0; i < k; i++)
            for (int j = 0; j < i; j++) (a[j * k + i], a[i * k + j]) = (a[i * k + j], 0);
        return a;
    }

    /// <summary>L (lower, into a zeroed <paramref name="l"/>) with L Lᵀ = A (row-major [K, K], A symmetric positive definite).</summary>
    private static void Cholesky(double[] a, double[] l, int k)
    {
        for (int i = 0; i < k; i++)
            for (int j = 0; j <= i; j++)
            {
                double sum = a[i * k + j] - TensorPrimitives.Dot(l.AsSpan(i * k, j), l.AsSpan(j * k, j));
                if (i == j)
                {
                    if (!(sum > 0)) throw new ArithmeticException($"the damped Gram matrix is not positive definite at row {i}");
                    l[i * k + i] = Math.Sqrt(sum);
                }
                else l[i * k + j] = sum / l[j * k + j];
            }
    }
}
