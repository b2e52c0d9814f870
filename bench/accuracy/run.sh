#!/usr/bin/env bash
# The bench of docs/accuracy.md: each model quantized W8A8 at defaults with the output-aware scale refinement off and
# on (--refine off / auto), FP32 vs INT8 metric, output SQNR, refinement loss before/after, wall time and peak RSS
# (GNU time). Bundled models always; the PaddleOCR models of docs/real-models.md when REAL points at the folder
# bench/real-models/fetch.sh filled (models/ and data/).
#   bash bench/accuracy/run.sh > table.md        (OUT: where models and reports go; REAL: the real-model folder)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-artifacts/accuracy}
mkdir -p "$out"
ptq="dotnet src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll"
tool="dotnet bench/RealModels/bin/Release/net10.0/linux-x64/RealModels.dll"
[ -f src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll ] || dotnet build PtqTool.sln -c Release > /dev/null
run() {  # name model calib eval batch refine [task]
  local name=$1 model=$2 calib=$3 eval=$4 batch=$5 refine=$6
  /usr/bin/time -f "%e %M" -o "$out/$name.$refine.time" $ptq quantize "$model" --calib "$calib" --eval "$eval" --batch "$batch" \
    --refine "$refine" --out "$out/$name.$refine.int8.onnx" --report "$out/$name.$refine.report.json" --quiet > "$out/$name.$refine.txt"
}
for m in fmnist_cnn fmnist_resnet; do
  for r in off auto; do run $m models/$m.onnx calibration/fashion-mnist/calib calibration/fashion-mnist/eval 32 $r; done
done
if [ -n "${REAL:-}" ]; then
  declare -A model=([cls]=ch_ppocr_mobile_v2.0_cls_infer [det]=ch_PP-OCRv4_det_infer [rec]=ch_PP-OCRv4_rec_infer)
  declare -A batch=([cls]=32 [det]=4 [rec]=16)
  [ -f bench/RealModels/bin/Release/net10.0/linux-x64/RealModels.dll ] || dotnet build bench/RealModels -c Release > /dev/null
  for task in ${TASKS:-cls rec det}; do
    fp32="$REAL/models/${model[$task]}.onnx"
    for r in off auto; do
      run $task "$fp32" "$REAL/data/$task-calib" "$REAL/data/$task-eval" ${batch[$task]} $r
      q="$out/$task.$r.int8.onnx"
      case $task in
        det) $tool det-iou "$fp32" "$q" "$REAL/data/det-eval" > "$out/$task.$r.task.txt" ;;
        rec) $tool rec-cer "$fp32" "$q" "$REAL/data/rec-eval" "$REAL/models/ppocr_keys_v1.txt" > "$out/$task.$r.task.txt" ;;
        *) : > "$out/$task.$r.task.txt" ;;
      esac
    done
  done
fi
python3 bench/accuracy/table.py "$out"
