#!/usr/bin/env bash
# sdfs against JPEG, WebP and AVIF at equal bytes on the Kodak set; docs/BENCHMARKS.md quotes its output.
# Usage: benchmarks/kodak_bench.sh [extra sdfs bench options, e.g. --limit 4 --effort 1]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SDFS_SHARED:-$(cd .. && pwd)/shared}"
export HF_HUB_CACHE="${HF_HUB_CACHE:-$SHARED/hf/hub}" HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
exec .venv/bin/sdfs bench "$SHARED/data/kodak" --bits 3,4,5,6 --out benchmarks/out/kodak "$@"
