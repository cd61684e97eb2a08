"""Real mounts for tests: the CLI daemonises, tests always unmount, even on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path


def sdfs(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdfs.cli", *args], capture_output=True, text=True, check=check,
                          timeout=timeout)


@contextmanager
def mounted(store: Path, mountpoint: Path, *options: str):
    mountpoint.mkdir(parents=True, exist_ok=True)
    result = sdfs("mount", str(store), str(mountpoint), *options, check=False)
    assert result.returncode == 0, result.stderr
    try:
        yield mountpoint
    finally:
        if os.path.ismount(mountpoint):
            done = sdfs("umount", str(mountpoint), check=False)
            if done.returncode != 0:
                subprocess.run(["fusermount3", "-uz", str(mountpoint)], check=False)
                raise AssertionError(f"umount failed: {done.stderr}")


def stats(mountpoint: Path) -> dict:
    return json.loads(os.getxattr(mountpoint, "user.sdfs.stats"))


def wait_for_encoder(mountpoint: Path, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = stats(mountpoint)
        if current["queue"] == 0:
            return current
        time.sleep(0.2)
    raise AssertionError(f"encode queue not empty after {timeout} s: {stats(mountpoint)}")
