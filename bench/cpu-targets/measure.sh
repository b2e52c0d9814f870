#!/usr/bin/env bash
# Measures every saturation guard on both bundled models, natively and with AVX-512/VNNI hidden (tools/cpumask),
# and prints the Markdown table of docs/cpu-targets.md. Needs gcc and a CPU with cpuid_fault for the AVX2 half.
#   bash bench/cpu-targets/measure.sh [EVAL_DIR] > table.md      (LOSSES, GUARDS, CPUS, OUT narrow or move it)
set -euo pipefail
cd "$(dirname "$0")/../.."
eval_dir=${1:-calibration/fashion-mnist/eval}
out=${OUT:-artifacts/cpu-targets}
mkdir -p "$out"
ptq="dotnet src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll"
gcc -O2 -shared -fPIC tools/cpumask/avx2only.c -o "$out/avx2only.so" -ldl
for model in fmnist_cnn fmnist_resnet; do
  for loss in ${LOSSES:-msqe qsin}; do
    for guard in ${GUARDS:-none pair-bound 7bit-weights 7bit-activations u8-weights}; do
      for cpu in ${CPUS:-native avx2}; do
        pre=""; [ "$cpu" = avx2 ] && pre="$out/avx2only.so"
        LD_PRELOAD=$pre $ptq quantize models/$model.onnx --calib calibration/fashion-mnist/calib --eval "$eval_dir" \
          --loss "$loss" --saturation-guard "$guard" --target x86-avx2 --quiet \
          --out "$out/$model.$loss.$guard.$cpu.onnx" --report "$out/$model.$loss.$guard.$cpu.report.json" > /dev/null
      done
    done
  done
done
python3 bench/cpu-targets/table.py "$out"
