#!/usr/bin/env bash
# The MobileNetV2-style bench of docs/accuracy.md: models/fmnist_mobilenetv2.onnx (ReLU6, depthwise convolutions,
# linear bottlenecks, BatchNormalization folded at export, as a deployed ImageNet MobileNetV2) quantized at W8A8, W4A8
# and W4A4 with each rounding; FP32 vs INT8 top-1, output SQNR, wall time and peak RSS (GNU time) per configuration.
#   bash bench/accuracy/mobilenet.sh > table.md
# EVAL: the labelled folder (default the bundled 2,000 images; `/usr/bin/python3 models/train.py --export-test DIR`
# writes the whole 10,000-image test split); OUT: where models and reports go; ONLY="name ...": run only these rows.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-artifacts/mobilenet}
eval_dir=${EVAL:-calibration/fashion-mnist/eval}
mkdir -p "$out"
ptq="dotnet src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll"
[ -f src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll ] || dotnet build PtqTool.sln -c Release > /dev/null
model=models/fmnist_mobilenetv2.onnx
configs=(
  "w8a8-defaults|"
  "w8a8-refine-off|--refine off"
  "w8a8-qsin|--loss qsin"
  "w8a8-entropy|--loss entropy"
  "w8a8-bias-correction|--bias-correction"
  "w8a8-avx2|--target x86-avx2"
  "w4a8-nearest|--weight-bits 4"
  "w4a8-adaround|--weight-bits 4 --rounding adaround"
  "w4a8-brecq|--weight-bits 4 --rounding brecq"
  "w4a4-brecq|--bits 4 --rounding brecq"
)
for c in "${configs[@]}"; do
  name=${c%%|*}; args=${c#*|}
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
  # shellcheck disable=SC2086
  /usr/bin/time -f "%e %M" -o "$out/$name.time" $ptq quantize $model --calib calibration/fashion-mnist/calib --eval "$eval_dir" \
    $args --out "$out/$name.onnx" --report "$out/$name.report.json" --quiet > "$out/$name.txt" || [ $? -eq 3 ]
  echo "$args" > "$out/$name.args"
done
python3 bench/accuracy/mobilenet_table.py "$out"
