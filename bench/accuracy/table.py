"""Tabulates bench/accuracy/run.sh's reports (standard library only): one row per model and --refine setting."""
import glob, json, os, sys

out = sys.argv[1]
print("| model | --refine | FP32 → INT8 (this CPU) | output SQNR | refinement loss before → after (scales moved / searched, work) | task metric | quantize wall | peak RSS |")
print("|---|---|---|---:|---|---|---:|---:|")
cpus = set()
for path in sorted(glob.glob(os.path.join(out, "*.report.json"))):
    name, refine = os.path.basename(path).split(".")[:2]
    r = json.load(open(path))
    e = r["evaluation"]
    cpus.add(f'{r["latency"]["cpu"]} ({e["kernels"]})')
    if e["labelled"]:
        acc = f'top-1 {e["fp32_top1"]:.2f} → {e["int8_top1"]:.2f} ({-e["top1_drop"]:+.2f})'
    elif e.get("class_scores") and e.get("top1_agreement") is not None:
        acc = f'agreement {e["top1_agreement"]:.2f} %'
    else:
        acc = f'cosine {e["output_cosine"]:.4f}'
    f = r["refinement"]
    ref = "—" if f is None else (f'{f["loss"]} {f["loss_before"]:.4g} → {f["loss_after"]:.4g} ({f["changed"]}/{f["groups"]}, '
                                  f'{f["work"]:g} passes of {f["samples"]} samples{", budget reached" if f["budget_reached"] else ""}, {f["seconds"]:.1f} s)')
    task = os.path.join(out, f"{name}.{refine}.task.txt")
    extra = open(task).read().strip().splitlines()[-1] if os.path.exists(task) and open(task).read().strip() else ""
    wall, rss = open(os.path.join(out, f"{name}.{refine}.time")).read().split()
    print(f'| {name} | {refine} | {acc} | {e["output_sqnr_db"]:.1f} dB | {ref} | {extra} | {float(wall):.1f} s | {int(rss) / 1024:.0f} MiB |')
print()
print("Measured on: " + "; ".join(sorted(cpus)))
