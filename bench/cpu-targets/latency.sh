#!/usr/bin/env bash
# Latency of FP32 vs INT8 (x86-vnni and x86-avx2 targets) for both bundled models at 28x28 (batch 32) and the same
# fully convolutional nets at 224x224 (batch 8), natively and with AVX-512/VNNI hidden (tools/cpumask). ptq bench runs
# the models in turn on one batch and reports medians; docs/cpu-targets.md has the results.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-artifacts/cpu-latency}
mkdir -p "$out"
ptq="dotnet src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll"
gcc -O2 -shared -fPIC tools/cpumask/avx2only.c -o "$out/avx2only.so" -ldl
for model in fmnist_cnn fmnist_resnet; do
  for target in x86-vnni x86-avx2; do
    $ptq quantize models/$model.onnx --calib calibration/fashion-mnist/calib --limit 200 --eval calibration/fashion-mnist/eval \
      --eval-limit 64 --loss qsin --target $target --out "$out/$model.$target.onnx" --quiet > /dev/null
  done
  # The same weights at 224x224: every layer is convolutional up to the global average pool.
  /usr/bin/python3 - "$model" "$out" <<'PY'
import json, sys, onnx
model, out = sys.argv[1], sys.argv[2]
m = onnx.load(f"models/{model}.onnx")
dims = m.graph.input[0].type.tensor_type.shape.dim
dims[2].dim_value = dims[3].dim_value = 224
onnx.save(m, f"{out}/{model}_224.onnx")
sidecar = json.load(open(f"models/{model}.json"))
sidecar.update(width=224, height=224, resize="stretch")
json.dump(sidecar, open(f"{out}/{model}_224.json", "w"))
PY
  for target in x86-vnni x86-avx2; do
    $ptq quantize "$out/${model}_224.onnx" --calib calibration/fashion-mnist/calib --limit 64 --eval-limit 16 --batch 8 \
      --loss qsin --target $target --out "$out/${model}_224.$target.onnx" --quiet > /dev/null
  done
done
for cpu in native avx2; do
  pre=""; [ "$cpu" = avx2 ] && pre="$out/avx2only.so"
  for model in fmnist_cnn fmnist_resnet; do
    LD_PRELOAD=$pre $ptq bench models/$model.onnx "$out/$model.x86-vnni.onnx" "$out/$model.x86-avx2.onnx" --batch 32 --runs ${RUNS:-200}
    LD_PRELOAD=$pre $ptq bench "$out/${model}_224.onnx" "$out/${model}_224.x86-vnni.onnx" "$out/${model}_224.x86-avx2.onnx" --batch 8 --runs ${RUNS224:-30} --profile
  done
done
