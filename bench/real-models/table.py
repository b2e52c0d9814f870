"""Tabulates bench/real-models/run.sh's reports (standard library only)."""
import glob, json, os, sys

out = sys.argv[1]
print("| model | loss | INT8 (this CPU) vs FP32 | output SQNR · cosine | task metric | weights | size FP32 → INT8 | latency FP32 → INT8 | peak RSS |")
print("|---|---|---|---:|---|---|---:|---:|---:|")
for path in sorted(glob.glob(os.path.join(out, "*.report.json"))):
    task, loss = os.path.basename(path).split(".")[:2]
    r = json.load(open(path))
    e = r["evaluation"]
    if e["labelled"]:
        acc = f'top-1 {e["fp32_top1"]:.2f} → {e["int8_top1"]:.2f} ({-e["top1_drop"]:+.2f})'
    elif e.get("class_scores") and e.get("top1_agreement") is not None:
        acc = f'agreement {e["top1_agreement"]:.1f}%'
    else:
        acc = "no class scores (SQNR gate)"
    extra = open(os.path.join(out, f"{task}.{loss}.task.txt")).read().strip()
    lat = r["latency"]
    w = r["rewrite"]
    print(f'| {task} | {loss} | {acc} | {e["output_sqnr_db"]:.1f} dB · {e["output_cosine"]:.5f} | {extra} | {w["quantized_weights"]} quantized, '
          f'{w["folded_batchnorms"]} BN folded | {r["model"]["fp32_bytes"] / 1024:.0f} → {r["model"]["int8_bytes"] / 1024:.0f} KiB | '
          f'{lat["fp32_ms"]:.1f} → {lat["int8_ms"]:.1f} ms ({lat["speedup"]:.2f}x, batch {lat["batch"]}) | {r["resources"]["peak_rss_bytes"] / 2**20:.0f} MiB |')
cpus = {json.load(open(p))["latency"]["cpu"] for p in glob.glob(os.path.join(out, "*.report.json"))}
print()
print("Measured on: " + "; ".join(sorted(str(c) for c in cpus)))
