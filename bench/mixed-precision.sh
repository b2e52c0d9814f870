#!/usr/bin/env bash
# docs/mixed-precision.md's table: uniform W8/W6/W4 (A8) against --avg-bits 6/5/4/3 on both bundled models, msqe,
# 500 calibration images; also --avg-bits with real int4 storage (the budget then counts stored bits) and with
# learned rounding. EVAL picks the evaluation folder (default: the bundled 2,000 labelled images; docs use the full
# 10,000-image test split, models/train.py --export-test). Prints a Markdown table.
#   EVAL=artifacts/fmnist-test bash bench/mixed-precision.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/mixed-precision}
eval_dir=${EVAL:-calibration/fashion-mnist/eval}
mkdir -p "$out"
ptq=${PTQ:-"dotnet src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll"}
run() {  # model, kind, options
  local model=$1 kind=$2; shift 2
  local s; s=$(date +%s.%N)
  $ptq quantize models/$model.onnx --calib calibration/fashion-mnist/calib --eval "$eval_dir" --loss msqe \
    "$@" --out "$out/$model.$kind.onnx" --report "$out/$model.$kind.report.json" --quiet > /dev/null
  echo "$(date +%s.%N) - $s" | bc > "$out/$model.$kind.seconds"
}
for model in fmnist_cnn fmnist_resnet; do
  for w in 8 6 4; do run $model uniform-$w --weight-bits $w; done
  for b in 6 5 4 3; do run $model mixed-$b --avg-bits $b; done
  for b in 5 4; do run $model mixed-$b-int4 --avg-bits $b --weight-storage int4; done
  run $model uniform-4-adaround --weight-bits 4 --rounding adaround
  run $model mixed-4-adaround --avg-bits 4 --rounding adaround
done
python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
print("| model | weights | average weight bits | per-layer bits (8/6/4/2) | Σ KL (128 calib. images) | top-1 (change) | output SQNR | weight bytes (budget) | file | wall time |")
print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
kinds = ["uniform-8", "uniform-6", "uniform-4", "mixed-6", "mixed-5", "mixed-4", "mixed-3", "mixed-5-int4", "mixed-4-int4", "uniform-4-adaround", "mixed-4-adaround"]
for model in ["fmnist_cnn", "fmnist_resnet"]:
    # The weight parameters the budget is counted on (every weight tensor: the mixed reports list them).
    params = sum(l["parameters"] for l in json.load(open(os.path.join(out, f"{model}.mixed-5.report.json")))["mixed_precision"]["layers"])
    for kind in kinds:
        r = json.load(open(os.path.join(out, f"{model}.{kind}.report.json")))
        e, m, size = r["evaluation"], r["mixed_precision"], r["model"]
        secs = float(open(os.path.join(out, f"{model}.{kind}.seconds")).read())
        extra = (" + int4 storage" if "int4" in kind else "") + (" + AdaRound" if "adaround" in kind else "")
        if m:
            counts = {b: sum(1 for l in m["layers"] if l["bits"] == b) for b in (8, 6, 4, 2)}
            bits, mix, omega = f'{m["average_bits"]:.2f}', "/".join(str(counts[b]) for b in (8, 6, 4, 2)), f'{m["sensitivity"]:.4f}'
            name, target = f'mixed, --avg-bits {kind.split("-")[1]}{extra}', m["target_average_bits"]
        else:
            w = r["options"]["weight_bits"]
            bits, mix, omega, name, target = f"{w}", "", "", f"uniform W{w}A8{extra}", w
        budget = params * target / 8
        print(f'| {model} | {name} | {bits} | {mix} | {omega} | {e["int8_top1"]:.2f} ({-e["top1_drop"]:+.2f}) | {e["output_sqnr_db"]:.1f} dB '
              f'| {size["weight_bytes"] / 1024:.1f} KiB ({budget / 1024:.1f}) | {size["int8_bytes"] / 1024:.1f} KiB | {secs:.0f} s |')
first = json.load(open(os.path.join(out, "fmnist_cnn.mixed-5.report.json")))
print(); print(f'Evaluated on {first["evaluation"]["samples"]} images ({first["evaluation"]["source"]}). Measured on: {first["latency"]["cpu"]}')
PY
