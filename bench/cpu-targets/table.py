"""Tabulates the reports bench/cpu-targets/measure.sh wrote (standard library only)."""
import glob, json, os, sys

out = sys.argv[1]
rows = {}
cpus = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    model, loss, guard, cpu = os.path.basename(path)[:-5].split(".")
    r = json.load(open(path))
    rows.setdefault((model, loss, guard), {})[cpu] = r
    cpus[cpu] = r["target"]["measured_on"]
for cpu, name in cpus.items():
    print(f"- `{cpu}`: {name}")
print()
print("| model | loss | guard | exact QDQ top-1 (change) · SQNR | VNNI fused top-1 · SQNR · speed-up | AVX2 fused top-1 · SQNR · speed-up | AVX2 check |")
print("|---|---|---|---:|---:|---:|---|")
for (model, loss, guard), by in rows.items():
    n = by.get("native") or by["avx2"]
    e = n["evaluation_exact"]
    def fused(r):
        if r is None: return "–"
        v = r["evaluation"]; l = r["latency"]
        return f'{v["int8_top1"]:.2f} · {v["output_sqnr_db"]:.1f} dB · {l["speedup"]:.2f}x'
    check = by.get("avx2", n)["saturation"]
    verdict = "clean" if not check["can_saturate"] else f'{check["saturating_channels"]} channels'
    print(f'| {model} | {loss} | {guard} | {e["int8_top1"]:.2f} ({-e["top1_drop"]:+.2f}) · {e["output_sqnr_db"]:.1f} dB | {fused(by.get("native"))} | {fused(by.get("avx2"))} | {verdict} |')
