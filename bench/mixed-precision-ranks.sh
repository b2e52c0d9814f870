#!/usr/bin/env bash
# ZeroQ's claim for mixed precision: distilled data ranks layers like real data. Ω_i(k) of every weight tensor at
# 2/4/6/8 bits measured on 128 real calibration images and on 64 ZeroQ-distilled samples (seed 0), both bundled
# models; prints Spearman's rank correlation over all (layer, bits) entries and per bit width over the layers.
#   bash bench/mixed-precision-ranks.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/mixed-precision}
mkdir -p "$out"
ptq="dotnet src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll"
for model in fmnist_cnn fmnist_resnet; do
  $ptq quantize models/$model.onnx --calib calibration/fashion-mnist/calib --avg-bits 5 --loss msqe --out "$out/$model.real.onnx" --report "$out/$model.ranks-real.json" --quiet > /dev/null
  $ptq quantize models/$model.onnx --synthetic zeroq --avg-bits 5 --loss msqe --out "$out/$model.zeroq.onnx" --report "$out/$model.ranks-zeroq.json" --quiet > /dev/null
done
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i]); r = [0.0] * len(v); i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]: j += 1
        for k in range(i, j + 1): r[order[k]] = (i + j) / 2
        i = j + 1
    return r
def spearman(a, b):
    ra, rb = ranks(a), ranks(b); n = len(a); ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb)); va = sum((x - ma) ** 2 for x in ra); vb = sum((y - mb) ** 2 for y in rb)
    return cov / (va * vb) ** 0.5 if va > 0 and vb > 0 else float("nan")
print("| model | layers | ρ over all (layer, bits) | ρ per bit width over layers (2 / 4 / 6 / 8) | bits chosen at --avg-bits 5: same for |")
print("|---|---:|---:|---|---:|")
for model in ["fmnist_cnn", "fmnist_resnet"]:
    real = json.load(open(os.path.join(out, f"{model}.ranks-real.json")))["mixed_precision"]["layers"]
    zq = {l["weight"]: l for l in json.load(open(os.path.join(out, f"{model}.ranks-zeroq.json")))["mixed_precision"]["layers"]}
    keys = ["2", "4", "6", "8"]
    a = [l["sensitivity_by_bits"][k] for l in real for k in keys]
    b = [zq[l["weight"]]["sensitivity_by_bits"][k] for l in real for k in keys]
    per = [spearman([l["sensitivity_by_bits"][k] for l in real], [zq[l["weight"]]["sensitivity_by_bits"][k] for l in real]) for k in keys]
    same = sum(1 for l in real if zq[l["weight"]]["bits"] == l["bits"])
    print(f'| {model} | {len(real)} | {spearman(a, b):.3f} | {" / ".join(f"{p:.2f}" for p in per)} | {same} of {len(real)} |')
PY
