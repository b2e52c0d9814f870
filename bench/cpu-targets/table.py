"""Tabulates the reports bench/cpu-targets/measure.sh wrote (standard library only)."""
import glob, json, os, sys

out = sys.argv[1]
rows = {}
cpus = {}
for path in sorted(glob.glob(os.path.join(out, "*.report.json"))):
    model, loss, guard, cpu = os.path.basename(path)[:-len(".report.json")].split(".")
    r = json.load(open(path))
    rows.setdefault((model, loss, guard), {})[cpu] = r
    cpus[cpu] = r["target"]["measured_on"]
for cpu, name in cpus.items():
    print(f"- `{cpu}`: {name}")
print()
print("| model | loss | guard | weight SQNR (mean) | exact QDQ top-1 (change) · SQNR | VNNI fused top-1 · SQNR | AVX2 fused top-1 · SQNR | AVX2 check |")
print("|---|---|---|---:|---:|---:|---:|---|")
for (model, loss, guard), by in rows.items():
    n = by.get("native") or by["avx2"]
    e = n["evaluation_exact"]
    def fused(r):
        if r is None: return "–"
        v = r["evaluation"]
        return f'{v["int8_top1"]:.2f} · {v["output_sqnr_db"]:.1f} dB'
    check = by.get("avx2", n)["saturation"]
    verdict = "clean" if not check["can_saturate"] else f'{check["saturating_channels"]} channels'
    ws = list(n["rewrite"].get("weight_sqnr_db", {}).values())
    wtext = f"{sum(ws) / len(ws):.1f} dB" if ws else "–"
    print(f'| {model} | {loss} | {guard} | {wtext} | {e["int8_top1"]:.2f} ({-e["top1_drop"]:+.2f}) · {e["output_sqnr_db"]:.1f} dB | {fused(by.get("native"))} | {fused(by.get("avx2"))} | {verdict} |')
