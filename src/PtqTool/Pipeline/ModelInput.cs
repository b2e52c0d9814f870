using PtqTool.Data;
using PtqTool.Onnx;

namespace PtqTool.Pipeline;

/// <summary>The model's single data input: its name and the shape of one sample (batch dimension dropped).</summary>
public sealed record ModelInput(string Name, int[] DeclaredShape)
{
    public static ModelInput Of(OrtRunner runner, string modelPath)
    {
        if (runner.InputNames.Count != 1)
            throw new PtqException($"{modelPath}: has {runner.InputNames.Count} inputs; only single-input models are supported");
        string name = runner.InputNames[0];
        return new ModelInput(name, runner.InputShape(name));
    }

    /// <summary>The per-sample shape: from the model where it is fixed, else from preprocessing (images).</summary>
    public int[] SampleShape(Preprocessing p, string modelPath)
    {
        var declared = DeclaredShape.Skip(1).ToArray();
        if (declared.All(d => d > 0))
        {
            return declared;
        }
        var fromPre = p.SampleShape;
        if (fromPre.Length != declared.Length)
            throw new PtqException($"{modelPath}: input '{Name}' has rank {DeclaredShape.Length}; preprocessing gives rank {fromPre.Length + 1}");
        return declared.Select((d, i) => d > 0 ? d : fromPre[i]).ToArray();
    }
}
