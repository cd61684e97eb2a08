"""`sdfs import` against `cp -r` through a mount, on the same Kodak images, in one run.

    SDFS_SHARED=../shared HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 \
        .venv/bin/python benchmarks/import_bench.py [--limit 8] [--floor ssimulacra2:30]

Both paths end in the same store contents (each image encoded and the quality guard's choice
swapped in). For the mount, the clock runs from the start of `cp` until the encode queue is empty;
for the import, it is the import's own figure (the model load is left out of both: the mount loads
it before the clock starts). Prints seconds and the ratio cp / import.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("SDFS_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def sdfs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdfs.cli", *args], capture_output=True, text=True, check=True)


def through_mount(source: Path, work: Path, floor: str) -> float:
    store, mnt = work / "mount-store", work / "mnt"
    mnt.mkdir()
    sdfs("mount", str(store), str(mnt), "--quality-floor", floor)
    try:
        started = time.perf_counter()
        subprocess.run(["cp", "-r", str(source), str(mnt / "photos")], check=True)
        while json.loads(os.getxattr(mnt, "user.sdfs.stats"))["queue"]:
            time.sleep(0.2)
        return time.perf_counter() - started
    finally:
        sdfs("umount", str(mnt))


def by_import(source: Path, work: Path, floor: str, jobs: int) -> float:
    store = work / f"import-store-{jobs}"
    result = sdfs("import", str(source), str(store), "--quality-floor", floor, "--jobs", str(jobs), "-q")
    summary = result.stderr.strip().splitlines()[-1]
    return float(re.search(r", ([0-9.]+) s,", summary).group(1))


def device_name() -> str:
    import torch

    return f"GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "no GPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--floor", default="ssimulacra2:30")
    parser.add_argument("--jobs", default=f"1,{os.cpu_count() or 1}", help="comma-separated --jobs to import with")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    jobs = [int(j) for j in args.jobs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "photos"
        source.mkdir()
        for path in sorted((SHARED / "data" / "kodak").glob("*.png"))[: args.limit]:
            shutil.copy(path, source / path.name)
        cp = through_mount(source, work, args.floor)
        imports = {n: by_import(source, work, args.floor, n) for n in jobs}
    print(f"{args.limit} Kodak images, quality floor {args.floor}, {cores} CPU cores, {device_name()}")
    print(f"  cp -r through a mount, until encoded   {cp:7.1f} s")
    for n, seconds in imports.items():
        print(f"  sdfs import --jobs {n:<2d}                  {seconds:7.1f} s   cp/import {cp / seconds:.2f}x")


if __name__ == "__main__":
    main()
