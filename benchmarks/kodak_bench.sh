#!/usr/bin/env bash
# sdfs against JPEG, WebP and AVIF at equal bytes on the Kodak set; docs/BENCHMARKS.md quotes its output.
# Usage: benchmarks/kodak_bench.sh [extra sdfs bench options, e.g. --limit 4 --effort 1, --model madebyollin/taesd]
# (the rate points are the model family's unless --bits says: sd3 3L,4L,6L,8L, sd1 3,4,5,6)
# Uses .venv/bin/sdfs when there is one, else `python3 -m sdfs.cli` (a GPU machine with the
# dependencies installed some other way).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SDFS_SHARED:-$(cd .. && pwd)/shared}"
export HF_HUB_CACHE="${HF_HUB_CACHE:-$SHARED/hf/hub}" HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
if [ -x .venv/bin/sdfs ]; then SDFS=(.venv/bin/sdfs); else SDFS=(python3 -m sdfs.cli); fi
exec "${SDFS[@]}" bench "$SHARED/data/kodak" --out benchmarks/out/kodak "$@"
