"""A full disk: close() reports ENOSPC, nothing already closed is lost, the mount keeps working."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

from tests.mountutil import mounted


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(disk)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_full_disk_gives_enospc_and_loses_nothing(small_disk, tmp_path):
    with mounted(small_disk / "store", tmp_path / "mnt", "--log", str(tmp_path / "sdfs.log")) as mnt:
        (mnt / "kept.txt").write_bytes(b"precious" * 1000)
        with pytest.raises(OSError) as err:
            with open(mnt / "huge.bin", "wb") as f:
                f.write(os.urandom(20 << 20))
        assert err.value.errno == errno.ENOSPC
        assert (mnt / "kept.txt").read_bytes() == b"precious" * 1000
        (mnt / "huge.bin").unlink(missing_ok=True)
        (mnt / "after.txt").write_bytes(b"still works")
        assert (mnt / "after.txt").read_bytes() == b"still works"
