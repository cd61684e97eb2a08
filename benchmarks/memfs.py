"""A minimal mfusepy in-memory filesystem: the reference sdfs's FUSE overhead is measured against.

    python benchmarks/memfs.py SOURCE_DIR MOUNTPOINT

Serves a copy of SOURCE_DIR (one level of subdirectories) from memory, read-only, with the
same FUSE options sdfs uses. Runs in the foreground until unmounted.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time

import mfusepy


class MemFS(mfusepy.Operations):
    use_ns = True

    def __init__(self, source: str) -> None:
        now = time.time_ns()
        self.files: dict[str, bytes] = {}
        self.dirs: dict[str, list[str]] = {"/": []}
        for root, dirs, files in os.walk(source):
            rel = "/" + os.path.relpath(root, source).strip(".").strip("/")
            rel = "/" if rel == "/" else rel
            self.dirs.setdefault(rel, [])
            for d in dirs:
                self.dirs[rel].append(d)
                self.dirs[os.path.join(rel, d)] = []
            for f in files:
                self.dirs[rel].append(f)
                with open(os.path.join(root, f), "rb") as handle:
                    self.files[os.path.join(rel, f)] = handle.read()
        self.now = now

    def getattr(self, path, fh=None):
        base = {"st_uid": 0, "st_gid": 0, "st_atime": self.now, "st_mtime": self.now, "st_ctime": self.now}
        if path in self.dirs:
            return {**base, "st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_size": 0}
        if path in self.files:
            return {**base, "st_mode": stat.S_IFREG | 0o644, "st_nlink": 1, "st_size": len(self.files[path])}
        raise mfusepy.FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return [".", "..", *self.dirs[path]]

    def open(self, path, flags):
        if path not in self.files:
            raise mfusepy.FuseOSError(errno.ENOENT)
        return 0

    def read(self, path, size, offset, fh):
        return self.files[path][offset:offset + size]


if __name__ == "__main__":
    mfusepy.FUSE(MemFS(sys.argv[1]), sys.argv[2], foreground=True, ro=True, default_permissions=True,
                 attr_timeout=1.0, entry_timeout=1.0, use_ino=False)
