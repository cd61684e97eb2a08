"""DESIGN contract 8: only the mounting user sees the mount unless -o allow_other; modes and owners
are honoured for everyone else (default_permissions). Runs commands as 'nobody' with setpriv."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.mountutil import mounted

NOBODY = 65534


def as_nobody(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def open_dir():
    """A directory every user can walk into (pytest's tmp_path is private to root)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to act as another user")
    path = Path(tempfile.mkdtemp(prefix="sdfs-perm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_other_users_need_allow_other_and_then_meet_modes_and_owners(open_dir):
    store, mnt = open_dir / "store", open_dir / "mnt"
    with mounted(store, mnt):
        (mnt / "public.txt").write_text("for everyone\n")
        (mnt / "public.txt").chmod(0o644)
        (mnt / "private.txt").write_text("root only\n")
        (mnt / "private.txt").chmod(0o600)
        (mnt / "theirs.txt").write_text("nobody's\n")
        os.chown(mnt / "theirs.txt", NOBODY, NOBODY)
        (mnt / "theirs.txt").chmod(0o600)
        denied = as_nobody("cat", str(mnt / "public.txt"))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
    with mounted(store, mnt, "-o", "allow_other"):
        assert as_nobody("cat", str(mnt / "public.txt")).stdout == "for everyone\n"
        private = as_nobody("cat", str(mnt / "private.txt"))
        assert private.returncode != 0 and "Permission denied" in private.stderr
        assert as_nobody("sh", "-c", f"echo mine >> {mnt / 'theirs.txt'}").returncode == 0
        assert (mnt / "theirs.txt").read_text() == "nobody's\nmine\n"
        create = as_nobody("touch", str(mnt / "new.txt"))  # the root directory is root's, 0755
        assert create.returncode != 0 and "Permission denied" in create.stderr
        chmod = as_nobody("chmod", "666", str(mnt / "public.txt"))
        assert chmod.returncode != 0 and "not permitted" in chmod.stderr
