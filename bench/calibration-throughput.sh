#!/usr/bin/env bash
# Calibration throughput against FP32 inference on the same images: `ptq calibrate` vs `ptq eval` (FP32 inference plus
# decoding) over the 2,000 bundled evaluation images, medians of 3 runs each, wall time of the whole command.
# THREADS=N gives both commands --threads N (eval: ONNX Runtime's intra-op threads; calibrate: N single-threaded runs at once, each binning its own outputs).
set -euo pipefail
cd "$(dirname "$0")/.."
ptq=${PTQ:-"dotnet src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll"}
model=${1:-models/fmnist_resnet.onnx}
images=${2:-calibration/fashion-mnist/eval}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_it() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
threads=(); [ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
cal=$(for i in 1 2 3; do time_it $ptq calibrate "$model" --calib "$images" --stats /tmp/ptq-throughput-stats.json --quiet "${threads[@]}"; done | median)
inf=$(for i in 1 2 3; do time_it $ptq eval "$model" --eval "$images" --quiet "${threads[@]}"; done | median)
echo "$model on $images${THREADS:+ (--threads $THREADS)}: calibrate ${cal} s, eval (FP32 inference + decoding) ${inf} s, calibration throughput $(echo "scale=2; $inf / $cal" | bc)x of inference"
rm -f /tmp/ptq-throughput-stats.json
