#!/usr/bin/env bash
# `sdfs bench` on the Kodak set split over GROUPS processes (a folder of images each), merged into
# one result by benchmarks/merge_bench.py: how the GPU runs in docs/BENCHMARKS.md fit all 24
# images into one device call (the sdfs side of one bench runs image by image).
# Usage: benchmarks/parallel_bench.sh GROUPS OUT [sdfs bench options]
#   e.g. OMP_NUM_THREADS=4 benchmarks/parallel_bench.sh 3 /tmp/k24 --bits 4,5,6 --effort 2 --codecs avif --jobs 4 --device cuda
# A run cut short leaves its rows in OUT/runN/results.partial.csv, and the merge takes those too.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SDFS_SHARED:-$(cd .. && pwd)/shared}"
export HF_HUB_CACHE="${HF_HUB_CACHE:-$SHARED/hf/hub}" HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
groups=$1 out=$2
shift 2
mapfile -t files < <(ls "$SHARED"/data/kodak/*.png | sort)
per=$(( (${#files[@]} + groups - 1) / groups ))
pids=()
for ((g = 0; g < groups; g++)); do
  rm -rf "$out/images$g" && mkdir -p "$out/images$g"
  for f in "${files[@]:g*per:per}"; do ln -s "$f" "$out/images$g/"; done
  "$PYTHON" -m sdfs.cli bench "$out/images$g" --out "$out/run$g" "$@" > "$out/run$g.log" 2>&1 &
  pids+=($!)
done
status=0
for g in "${!pids[@]}"; do
  wait "${pids[$g]}" || { echo "group $g failed, see $out/run$g.log" >&2; status=1; }
done
PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" benchmarks/merge_bench.py "$out"/run*/results*.csv --out "$out/merged"
exit $status
