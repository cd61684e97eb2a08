"""The quality guard's time per photo against an earlier revision of sdfs, on the same Kodak photos, in one run.

    SDFS_SHARED=../shared HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 \
        .venv/bin/python benchmarks/guard_speed.py --before REV [--limit 8] [--rounds 2] [--device cpu]

``REV`` is checked out in a temporary git worktree. Each round runs the guard (``encode_images``, one photo at a
time as a mount does, at the default floor and codec of each revision) in a fresh process per revision,
alternating, with the model loaded before the clock starts. Prints seconds per photo for each revision, the
ratio, and whether both stored the same kinds in the same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SDFS_SHARED", REPO.parent / "shared"))


def child(limit: int, device: str) -> None:
    """Run in the tree on sys.path: one JSON line of seconds per photo and what was stored."""
    from sdfs.codec import Codec, read_image
    from sdfs.guard import DEFAULT_FLOOR, QualityFloor, QualityGuard, encode_images

    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:limit]
    jobs = [(path.name, read_image(path.read_bytes()), path.read_bytes()) for path in files]
    codec = Codec.from_pretrained(device=device)
    guard = QualityGuard(QualityFloor.parse(DEFAULT_FLOOR))
    encode_images(codec, QualityGuard(guard.floor), jobs[:1])  # warm-up
    started = time.perf_counter()
    stored = [(choice.kind, len(choice.data or b"")) for job in jobs for choice in encode_images(codec, guard, [job])]
    import sdfs

    print(json.dumps({"seconds": (time.perf_counter() - started) / len(jobs), "stored": stored, "sdfs": sdfs.__file__}))


def run(tree: Path, limit: int, device: str) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(tree)}  # ahead of the editable install: that tree's sdfs
    out = subprocess.run([sys.executable, __file__, "--child", "--limit", str(limit), "--device", device],
                         capture_output=True, text=True, check=True, cwd=tree, env=environment)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(result["sdfs"]).resolve() != (tree / "sdfs" / "__init__.py").resolve():
        raise RuntimeError(f"the child imported {result['sdfs']}, not {tree}'s sdfs")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="the git revision to compare with")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.child:
        return child(args.limit, args.device)
    if not args.before:
        parser.error("--before REV is required")
    with tempfile.TemporaryDirectory() as scratch:
        before = Path(scratch) / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(before), args.before],
                       check=True)
        try:
            trees = {args.before: before, "working tree": REPO}
            results: dict[str, list[dict]] = {name: [] for name in trees}
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    results[name].append(run(tree, args.limit, args.device))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)], check=True)
    print(f"quality guard at the default floor, {args.limit} Kodak photos, device {args.device}, "
          f"best of {args.rounds} rounds, alternating")
    best = {}
    for name, rounds in results.items():
        best[name] = min(r["seconds"] for r in rounds)
        each = ", ".join(f"{r['seconds']:.2f}" for r in rounds)
        print(f"  {name:14s} {best[name]:6.2f} s per photo   (rounds: {each})")
    old, new = best.values()
    stored = [rounds[0]["stored"] for rounds in results.values()]
    print(f"  ratio {old / new:.2f}x; the same kinds in the same bytes: {stored[0] == stored[1]}")
    for (kind, size), (kind2, size2) in zip(*stored):
        if (kind, size) != (kind2, size2):
            print(f"    {kind} {size} B -> {kind2} {size2} B")


if __name__ == "__main__":
    main()
