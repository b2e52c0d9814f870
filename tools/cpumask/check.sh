#!/usr/bin/env bash
# Checks that tools/cpumask works on this machine: builds the shim and a CPUID probe, runs the probe unmasked and
# masked, and (CPUMASK_HIDE_AVX2=1) with AVX2 hidden too, which shows the mask on an AVX2-only machine as well.
# Without cpuid_fault the shim must refuse to run (exit 125), and this check says so.
#   bash tools/cpumask/check.sh
set -uo pipefail
cd "$(dirname "$0")"
dir=$(mktemp -d)
gcc -O2 -Wall -shared -fPIC avx2only.c -o "$dir/avx2only.so" -ldl || exit 1
gcc -O2 -Wall probe.c -o "$dir/probe" || exit 1
echo "unmasked:             $("$dir/probe")"
masked=$(LD_PRELOAD="$dir/avx2only.so" "$dir/probe" 2> "$dir/err"); rc=$?
if ! grep -qw cpuid_fault /proc/cpuinfo; then
  if [ $rc -eq 125 ]; then echo "no cpuid_fault here: the shim refused to run unmasked ($(cat "$dir/err")); OK"; exit 0; fi
  echo "FAIL: no cpuid_fault here, but the shim ran (exit $rc)"; exit 1
fi
[ $rc -eq 0 ] || { echo "FAIL: the masked probe exited $rc: $(cat "$dir/err")"; exit 1; }
echo "masked:               $masked"
both=$(CPUMASK_HIDE_AVX2=1 LD_PRELOAD="$dir/avx2only.so" "$dir/probe")
echo "masked, AVX2 hidden:  $both"
case "$masked" in *"avx512f=0 avx512bw=0 avx512vnni=0"*) ;; *) echo "FAIL: AVX-512 still visible"; exit 1 ;; esac
case "$both" in "avx2=0 fma=0 "*) ;; *) echo "FAIL: CPUMASK_HIDE_AVX2=1 left AVX2 or FMA visible"; exit 1 ;; esac
echo "cpumask works on this machine"
rm -rf "$dir"
