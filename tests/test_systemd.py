"""What can be tested of the systemd integration without a running systemd."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.mountutil import sdfs

BIN = Path(sys.executable).parent


def test_notify_ready_only_once_the_mount_is_usable_and_sigterm_unmounts(tmp_path):
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(180)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    daemon = subprocess.Popen([sys.executable, "-m", "sdfs.cli", "mount", "--foreground", str(tmp_path / "store"),
                               str(mnt)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        message = listener.recv(4096).decode()
        assert "READY=1" in message
        assert os.path.ismount(mnt)  # ready means usable, right now
        (mnt / "hello.txt").write_text("hi")
        assert (mnt / "hello.txt").read_text() == "hi"
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=120) == 0, daemon.stderr.read()
        assert "STOPPING=1" in listener.recv(4096).decode()
        assert not os.path.ismount(mnt)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-uz", str(mnt)], check=False)
        listener.close()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_verifies(tmp_path):
    unit = (REPO / "systemd" / "sdfs@.service").read_text().replace("/opt/sdfs/.venv/bin/sdfs", str(BIN / "sdfs"))
    assert "Type=notify" in unit and "Restart=on-failure" in unit and "User=" in unit
    (tmp_path / "sdfs@photos.service").write_text(unit)
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "sdfs@photos.service")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_fstab_helper_mounts_with_fstab_options(tmp_path):
    helper = BIN / "mount.fuse.sdfs"
    assert helper.exists(), "pip install -e . installs the mount.fuse.sdfs helper"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    result = subprocess.run([str(helper), str(tmp_path / "store"), str(mnt), "-o",
                             "defaults,nofail,_netdev,cache_size=64M,quality_floor=psnr:31"], capture_output=True,
                            text=True, timeout=300)
    try:
        assert result.returncode == 0, result.stderr
        assert os.path.ismount(mnt)
        (mnt / "x").write_bytes(b"fstab")
        assert (mnt / "x").read_bytes() == b"fstab"
    finally:
        if os.path.ismount(mnt):
            sdfs("umount", str(mnt))
    assert "quality floor psnr:31" in sdfs("stats", str(tmp_path / "store")).stdout
    bad = subprocess.run([str(helper), str(tmp_path / "store"), str(mnt), "-o", "frobnicate"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "frobnicate" in bad.stderr
