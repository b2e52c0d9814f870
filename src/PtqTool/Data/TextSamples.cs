namespace PtqTool.Data;

/// <summary>Lists a text file's sentences (one a line, blank lines skipped) as samples.</summary>
public static class TextSamples
{
    public static List<SampleFile> List(string path)
    {
        if (Directory.Exists(path)) throw new PtqException($"{path}: is a folder, expected a text file (one sentence a line)");
        if (!File.Exists(path)) throw new PtqException($"{path}: file not found");
        var samples = new List<SampleFile>();
        int line = 0;
        try
        {
            foreach (var text in File.ReadLines(path))
            {
                line++;
                if (text.Trim().Length > 0) samples.Add(new SampleFile($"{path}:{line}", Text: text.Trim()));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PtqException($"{path}: cannot read ({e.Message})", inner: e);
        }
        if (samples.Count == 0) throw new PtqException($"{path}: no sentences (one a line)");
        return samples;
    }
}
