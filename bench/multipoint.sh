#!/usr/bin/env bash
# docs/multipoint.md's tables: multipoint weights (--multipoint) on both bundled models at W4A8 and W3A8, the budget
# swept over 0/5/10/25/50/100 % extra multiply-adds (msqe, 500 calibration images), W8A8 as the reference, the padded
# and scatter forms at one budget, and with learned rounding; evaluated on the full 10,000-image Fashion-MNIST test
# split (models/train.py --export-test). Latency: every model of one network timed in turn by `ptq bench` (batch 32).
# Writes the table to OUT/multipoint.md and the curve to OUT/multipoint-MODEL.png.
#   bash bench/multipoint.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/multipoint}
test_split=${TEST_SPLIT:-artifacts/fmnist-test}
mkdir -p "$out"
if [ ! -d "$test_split" ]; then /usr/bin/python3 models/train.py --export-test "$test_split"; fi
ptq=${PTQ:-"dotnet src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll"}
run() {  # name, then ptq quantize options
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$out/$name.time" $ptq quantize "$@" --eval "$test_split" --loss msqe \
    --out "$out/$name.onnx" --report "$out/$name.report.json" --quiet > /dev/null
}
budgets=${BUDGETS:-"0 0.05 0.1 0.25 0.5 1"}
for model in ${MODELS:-fmnist_cnn fmnist_resnet}; do
  m=(models/$model.onnx --calib calibration/fashion-mnist/calib)
  run $model.w8 "${m[@]}"
  for w in 4 3; do
    for b in $budgets; do run $model.w$w-mp$b "${m[@]}" --weight-bits $w --multipoint $b; done
  done
  run $model.w4-mp0.25-padded "${m[@]}" --weight-bits 4 --multipoint 0.25 --multipoint-form padded
  run $model.w4-mp0.25-scatter "${m[@]}" --weight-bits 4 --multipoint 0.25 --multipoint-form scatter
  for w in 4 3; do for b in 0 0.1 0.25; do run $model.w$w-mp$b-adaround "${m[@]}" --weight-bits $w --multipoint $b --rounding adaround; done; done
  $ptq plot multipoint "$out"/$model.w[34]-mp?.report.json "$out"/$model.w[34]-mp?.??.report.json "$out"/$model.w[34]-mp?.?.report.json --out "$out/multipoint-$model.png" > /dev/null
  # Latency of every variant, timed in turn in one process.
  $ptq bench models/$model.onnx "$out"/$model.*.onnx --runs 100 --threads ${THREADS:-0} > "$out/$model.bench.txt"
done
python3 - "$out" <<'PY'
import json, sys, os, re, glob
out = sys.argv[1]
lines = ["| model | weights | rounding | --multipoint (form) | channels with 2 terms | extra MACs | top-1 (change vs FP32) | agreement | output SQNR | file | latency batch 32 (vs W8A8) | run wall / peak RSS |",
         "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
cpu = ""
for model in ["fmnist_cnn", "fmnist_resnet"]:
    bench = open(os.path.join(out, f"{model}.bench.txt")).read()
    ms = {os.path.basename(m[0]): float(m[1]) for m in re.findall(r"^\s+(\S+\.onnx): median ([0-9.]+) ms", bench, re.M)}
    cpu = bench.splitlines()[0].split(" on ", 1)[1].split(";")[0]
    w8 = ms.get(f"{model}.w8.onnx")
    names = sorted((os.path.basename(p)[:-len(".report.json")] for p in glob.glob(os.path.join(out, f"{model}.*.report.json"))),
                   key=lambda n: (n != f"{model}.w8", "adaround" in n, "padded" in n or "scatter" in n, -int(re.search(r"\.w(\d)", n).group(1)), float(re.search(r"mp([0-9.]+)", n).group(1)) if "mp" in n else 0))
    for name in names:
        r = json.load(open(os.path.join(out, name + ".report.json")))
        e, o, mp = r["evaluation"], r["options"], r["multipoint"]
        secs, rss = open(os.path.join(out, name + ".time")).read().split()
        form = "" if not mp else ("padded" if "padded" in name else "scatter" if "scatter" in name else "auto")
        budget = f'{100 * o["multipoint"]:g} %' + (f" ({form})" if form else "")
        chans = f'{sum(l["term_rows"] for l in mp["layers"])} / {sum(l["rows"] for l in mp["layers"])}' if mp else ""
        extra = f'+{100 * mp["extra_fraction"]:.1f} %' if mp else ""
        lat = ms.get(name + ".onnx")
        latency = f"{lat:.2f} ms ({w8 / lat:.2f}x)" if lat and w8 else ""
        lines.append(f'| {model} | W{o["weight_bits"]}A{o["activation_bits"]} | {o["rounding"]} | {budget} | {chans} | {extra} | {e["int8_top1"]:.2f} ({-e["top1_drop"]:+.2f}) | {e["top1_agreement"]:.2f} '
                     f'| {e["output_sqnr_db"]:.1f} dB | {r["model"]["int8_bytes"] / 1024:.1f} KiB | {latency} | {float(secs):.0f} s / {int(rss) // 1024} MiB |')
    fp32 = ms.get(f"{model}.onnx")
    if fp32: lines.append(f"| {model} | FP32 | | | | | {e['fp32_top1']:.2f} | | | {os.path.getsize(f'models/{model}.onnx') / 1024:.1f} KiB | {fp32:.2f} ms ({w8 / fp32:.2f}x) | |")
first = json.load(open(glob.glob(os.path.join(out, "*.report.json"))[0]))
lines += ["", f'Evaluated on {first["evaluation"]["samples"]} images ({first["evaluation"]["source"]}). Measured on: {cpu}.']
open(os.path.join(out, "multipoint.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
