#!/usr/bin/env bash
# docs/mixed-precision.md's table: uniform W8/W6/W4 (A8) against --avg-bits 6/5/4/3 on both bundled models, msqe,
# 500 calibration images, the 2,000 labelled evaluation images. Prints a Markdown table.
#   bash bench/mixed-precision.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/mixed-precision}
mkdir -p "$out"
ptq="dotnet src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll"
for model in fmnist_cnn fmnist_resnet; do
  for w in 8 6 4; do
    $ptq quantize models/$model.onnx --calib calibration/fashion-mnist/calib --eval calibration/fashion-mnist/eval --loss msqe \
      --weight-bits $w --out "$out/$model.w$w.onnx" --report "$out/$model.uniform-$w.json" --quiet > /dev/null
  done
  for b in 6 5 4 3; do
    s=$(date +%s.%N)
    $ptq quantize models/$model.onnx --calib calibration/fashion-mnist/calib --eval calibration/fashion-mnist/eval --loss msqe \
      --avg-bits $b --out "$out/$model.avg$b.onnx" --report "$out/$model.mixed-$b.json" --quiet > /dev/null
    echo "$(date +%s.%N) - $s" | bc > "$out/$model.mixed-$b.seconds"
  done
done
python3 - "$out" <<'PY'
import json, sys, glob, os
out = sys.argv[1]
print("| model | weights | average weight bits | per-layer bits (8/6/4/2) | Σ KL (128 calib. images) | top-1 (change) | output SQNR | wall time |")
print("|---|---|---:|---|---:|---:|---:|---:|")
for model in ["fmnist_cnn", "fmnist_resnet"]:
    for kind in ["uniform-8", "uniform-6", "uniform-4", "mixed-6", "mixed-5", "mixed-4", "mixed-3"]:
        r = json.load(open(os.path.join(out, f"{model}.{kind}.json")))
        e, m = r["evaluation"], r["mixed_precision"]
        if m:
            counts = {b: sum(1 for l in m["layers"] if l["bits"] == b) for b in (8, 6, 4, 2)}
            bits, mix, omega = f'{m["average_bits"]:.2f}', "/".join(str(counts[b]) for b in (8, 6, 4, 2)), f'{m["sensitivity"]:.4f}'
            secs = float(open(os.path.join(out, f"{model}.{kind}.seconds")).read())
            name, t = f'mixed, --avg-bits {kind.split("-")[1]}', f"{secs:.0f} s"
        else:
            w = r["options"]["weight_bits"]
            bits, mix, omega, name, t = f"{w}", "", "", f"uniform W{w}A8", ""
        print(f'| {model} | {name} | {bits} | {mix} | {omega} | {e["int8_top1"]:.2f} ({-e["top1_drop"]:+.2f}) | {e["output_sqnr_db"]:.1f} dB | {t} |')
cpu = json.load(open(os.path.join(out, "fmnist_cnn.mixed-5.json")))["latency"]["cpu"]
print(); print(f"Measured on: {cpu}")
PY
