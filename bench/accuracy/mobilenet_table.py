"""Tabulates bench/accuracy/mobilenet.sh's reports (standard library only): one row per configuration."""
import glob, json, os, sys

out = sys.argv[1]
print("| configuration | options | FP32 → INT8 top-1 (drop) | output SQNR | refinement | quantize wall | peak RSS |")
print("|---|---|---|---:|---|---:|---:|")
cpus = set()
for path in sorted(glob.glob(os.path.join(out, "*.report.json")), key=os.path.getmtime):
    name = os.path.basename(path)[: -len(".report.json")]
    r = json.load(open(path))
    e = r["evaluation"]
    cpus.add(f'{r["latency"]["cpu"]} ({e["kernels"]})')
    f = r["refinement"]
    ref = "off" if f is None else f'{f["loss"]} {f["loss_before"]:.3g} → {f["loss_after"]:.3g}'
    args = open(os.path.join(out, name + ".args")).read().strip() or "(defaults)"
    wall, rss = open(os.path.join(out, name + ".time")).read().split()
    print(f'| {name} | `{args}` | {e["fp32_top1"]:.2f} → {e["int8_top1"]:.2f} ({e["top1_drop"]:.2f}) | {e["output_sqnr_db"]:.1f} dB | {ref} | {float(wall):.1f} s | {int(rss) / 1024:.0f} MiB |')
print()
print(f'Evaluated on {e["samples"]} images. Measured on: ' + "; ".join(sorted(cpus)))
