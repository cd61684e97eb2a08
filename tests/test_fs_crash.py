"""kill -9 of the daemon mid-copy loses nothing whose close() returned; the queue resumes; fsck is clean."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
from PIL import Image

from tests.conftest import KODAK, psnr
from tests.mountutil import mounted, sdfs, wait_for_encoder


def make_files(folder, count=20):
    folder.mkdir()
    source = np.asarray(Image.open(KODAK / "kodim21.png").convert("RGB"))
    files = {}
    for i in range(count):
        path = folder / (f"img{i:02d}.png" if i % 2 == 0 else f"note{i:02d}.txt")
        if i % 2 == 0:
            y, x = (i * 13) % 380, (i * 29) % 630
            Image.fromarray(source[y:y + 128, x:x + 136]).save(path)
        else:
            path.write_bytes(os.urandom(5000 + i))
        files[path.name] = path
    return files


def test_kill_minus_nine_mid_copy(tmp_path):
    files = make_files(tmp_path / "src")
    store, mnt = tmp_path / "store", tmp_path / "mnt"
    closed: list[str] = []
    with mounted(store, mnt):
        pid = int(os.getxattr(mnt, "user.sdfs.pid"))

        def copy():
            for name, path in files.items():
                try:
                    with open(mnt / name, "wb") as out:
                        out.write(path.read_bytes())
                except OSError:
                    return
                closed.append(name)

        worker = threading.Thread(target=copy)
        worker.start()
        deadline = time.monotonic() + 120
        while len(closed) < 9 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        worker.join()
        assert 9 <= len(closed) < len(files)
        with open("/proc/mounts") as mounts:
            assert str(mnt) in mounts.read()  # the dead mount is still there: "Transport endpoint is not connected"
        result = sdfs("umount", str(mnt), check=False)
        assert result.returncode == 0, result.stderr
        assert not os.path.ismount(mnt)
    with mounted(store, mnt):
        for name in closed:
            data = (mnt / name).read_bytes()
            if name.endswith(".txt"):
                assert data == files[name].read_bytes(), name
            else:
                original = np.asarray(Image.open(files[name]))
                image = np.asarray(Image.open(mnt / name))
                assert image.shape == original.shape and psnr(image, original) > 20, name
        assert wait_for_encoder(mnt)["queue"] == 0  # what was queued before the crash got encoded
        assert b"queued" not in os.getxattr(mnt / closed[0], "user.sdfs.codec")
    report = sdfs("fsck", str(store), check=False)
    assert report.returncode == 0 and "clean" in report.stdout, report.stdout
