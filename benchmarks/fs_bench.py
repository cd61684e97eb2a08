"""Filesystem benchmark: sdfs against a plain directory and a minimal mfusepy filesystem.

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 python benchmarks/fs_bench.py [--files 10000]

Prints, from one run on one machine:
  * cached sequential read throughput of one PNG (the rendered view of a 2048x2048 photo),
  * `ls -l` of a directory of N small files,
  * cold decode latency of a 768x512 image through the mount, next to the bare codec decode,
with ratios against the minimal mfusepy in-memory filesystem (benchmarks/memfs.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SDFS_SHARED", REPO.parent / "shared"))
KODAK = SHARED / "data" / "kodak"
sys.path.insert(0, str(REPO))

from tests.mountutil import mounted, wait_for_encoder  # noqa: E402


def read_throughput(path: Path, rounds: int = 5) -> float:
    """MB/s of sequential 1 MiB reads, best of ``rounds`` after one warm-up read."""
    size = path.stat().st_size
    best = float("inf")
    for i in range(rounds + 1):
        t0 = time.perf_counter()
        with open(path, "rb", buffering=0) as handle:
            while handle.read(1 << 20):
                pass
        if i:
            best = min(best, time.perf_counter() - t0)
    return size / best / 1e6


def ls_seconds(folder: Path, rounds: int = 3) -> float:
    """Median seconds of `ls -l`, each run after the kernel's 1 s attribute and entry timeouts expire."""
    times = []
    for _ in range(rounds):
        time.sleep(1.2)
        t0 = time.perf_counter()
        subprocess.run(["ls", "-l", str(folder)], stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fill(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"note{i:05d}.txt").write_bytes(b"x" * 100)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sdfs-bench-"))
    plain = work / "plain"
    big = Image.open(KODAK / "kodim23.png").convert("RGB").resize((2048, 2048), Image.LANCZOS)
    store, mnt, memmnt = work / "store", work / "mnt", work / "memfs"
    memmnt.mkdir()
    with mounted(store, mnt, "--quality-floor", "off"):  # latents only: the cold read measures a latent decode
        big.save(mnt / "big.png")
        shutil.copy(KODAK / "kodim05.png", mnt / "cold.png")
        fill(mnt / "many", args.files)
        wait_for_encoder(mnt, timeout=1800)
        # the plain directory and the memfs serve exactly the bytes sdfs serves
        plain.mkdir()
        shutil.copy(mnt / "big.png", plain / "big.png")
        fill(plain / "many", args.files)
        rows = {"read MB/s (cached PNG)": [read_throughput(plain / "big.png")],
                f"ls -l of {args.files} files, s": [ls_seconds(plain / "many")]}
        memfs = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "memfs.py"), str(plain), str(memmnt)])
        try:
            while not os.path.ismount(memmnt):
                time.sleep(0.1)
            rows["read MB/s (cached PNG)"].append(read_throughput(memmnt / "big.png"))
            rows[f"ls -l of {args.files} files, s"].append(ls_seconds(memmnt / "many"))
        finally:
            subprocess.run(["fusermount3", "-u", str(memmnt)], check=False)
            memfs.wait()
        rows["read MB/s (cached PNG)"].append(read_throughput(mnt / "big.png"))
        rows[f"ls -l of {args.files} files, s"].append(ls_seconds(mnt / "many"))
    with mounted(store, mnt):  # a fresh daemon: nothing cached
        t0 = time.perf_counter()
        (mnt / "cold.png").read_bytes()
        cold = time.perf_counter() - t0
    from sdfs.codec import Codec
    from sdfs.store import LATENT, Store

    with Store(store) as s:
        blob = s.blob(s.resolve("/cold.png").ino, LATENT)
    codec = Codec.from_pretrained(device="cpu")
    codec.decode(blob)
    t0 = time.perf_counter()
    codec.decode(blob)
    bare = time.perf_counter() - t0

    print(f"{'':32s} {'plain dir':>10s} {'memfs':>9s} {'sdfs':>9s} {'sdfs/memfs':>11s}")
    for name, (p, m, s) in rows.items():
        print(f"{name:32s} {p:10.3f} {m:9.3f} {s:9.3f} {s / m:11.2f}")
    print("(memfs: benchmarks/memfs.py, a minimal mfusepy in-memory filesystem. For reads the ratio is of "
          "throughputs, higher is better; for ls -l it is of seconds, lower is better)")
    print(f"cold read of a 768x512 image through the mount: {cold:.2f} s "
          f"(bare codec decode {bare:.2f} s, overhead {cold - bare:+.2f} s)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
