"""Markdown tables of bench/rounding.sh's reports (stdlib only): python3 bench/rounding-table.py OUT"""
import json
import os
import sys

out = sys.argv[1]
print("| model | weights | data | rounding | top-1 (change vs FP32) | agreement | output SQNR | output error vs nearest | rounding time | eval images | run wall / peak RSS |")
print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
cpu = None
for model in ["fmnist_cnn", "fmnist_resnet", "ppocr_cls", "ppocr_cls1k"]:
    for w in ["w8", "w4", "w3", "mixed45"]:
        for data in ["", "-zeroq"]:
            for rounding in ["nearest", "adaround", "adaround-check-double", "adaround-check-off", "adaround-qtarget", "brecq"]:
                path = os.path.join(out, f"{model}.{w}-{rounding}{data}.report.json")
                if not os.path.exists(path):
                    continue
                r = json.load(open(path))
                e, ro = r["evaluation"], r["rounding"]
                cpu = r["latency"]["cpu"]
                wall, rss = open(path[:-12] + ".time").read().split()
                ratio = time = ""
                if ro and ro.get("blocks"):
                    b = ro["blocks"]
                    near = sum(x["nearest_error"] for x in b)
                    ratio = f'{100 * sum(x["error"] for x in b) / near:.0f} % (per-layer AdaRound: {100 * sum(x["adaround_error"] for x in b) / near:.0f} %; block outputs)'
                    time = f'{ro["seconds"]:.1f} s ({len(b)} blocks, {len(ro["layers"])} layers, {ro["iterations"]} it.)'
                elif ro:
                    kept = sum(l["nearest_error"] if l.get("reverted") else l["error"] for l in ro["layers"])
                    ratio = f'{100 * kept / sum(l["nearest_error"] for l in ro["layers"]):.0f} %'
                    time = f'{ro["seconds"]:.1f} s ({len(ro["layers"])} layers, {ro["iterations"]} it.)'
                    if ro.get("check"):
                        time += f', {ro["check"]["reverted"]} reverted by the check'
                label = "--avg-bits 4.5" if w == "mixed45" else f"W{w[1:]}A8"
                shown = {"adaround": "adaround (fit FP32)", "adaround-check-double": "adaround (fit FP32), --rounding-check double",
                         "adaround-check-off": "adaround (fit FP32), --rounding-check off", "adaround-qtarget": "adaround (fit quantized)",
                         "brecq": "brecq (blocks, fit FP32)"}.get(rounding, rounding)
                print(f'| {model} | {label} | {"ZeroQ" if data else str(r["calibration"]["samples"]) + " images"} | {shown} | {e["int8_top1"]:.2f} ({-e["top1_drop"]:+.2f}) '
                      f'| {e["top1_agreement"]:.2f} | {e["output_sqnr_db"]:.1f} dB | {ratio} | {time} | {e["samples"]} | {float(wall):.0f} s / {int(rss) // 1024} MiB |')
print()
print(f"Measured on: {cpu}")
