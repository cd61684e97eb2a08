"""The store: one LMDB environment under STORE holding the whole filesystem.

Named databases:

* ``config``  store settings (latent family, model, codec), written at creation
* ``inodes``  ino (u64 BE) -> inode record (JSON)
* ``dirents`` parent ino (u64 BE) + name -> child ino, so readdir is one range scan
* ``blobs``   ino + kind byte -> bytes: ``o`` original bytes, ``l`` latent blob, ``m`` PNG metadata chunks
* ``queue``   ino -> generation of the content waiting for the encoder

Every mutation is one write transaction. When the map is full it is doubled and the
transaction retried. A second process opening the same store is refused (flock).
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import os
import stat
import struct
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import lmdb

ROOT_INO = 1
FORMAT_VERSION = 1
INITIAL_MAP_SIZE = 256 << 20
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2

ORIGINAL, LATENT, AVIF, METADATA = b"o", b"l", b"a", b"m"
# where each stored form of an image lives; "image" (queued) and "original" (kept by the guard) use ORIGINAL
BLOB_OF_CONTENT = {"latent": LATENT, "avif": AVIF}


class StoreError(Exception):
    """A store-level failure with a message for the user."""


class StoreLockedError(StoreError):
    pass


class FsError(OSError):
    """A POSIX error for the filesystem layer to return as its errno."""

    def __init__(self, code: int, what: str = "") -> None:
        super().__init__(code, os.strerror(code) + (f": {what}" if what else ""))


@dataclass
class Inode:
    ino: int
    kind: str  # "dir", "file" or "symlink"
    mode: int  # full st_mode including the type bits
    uid: int
    gid: int
    nlink: int = 1
    size: int = 0  # st_size as the mount shows it
    atime_ns: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    generation: int = 0  # bumped on every content change; caches key on (ino, generation)
    # "raw" byte-exact; images: "image" (original, queued), then what the encoder stored: "latent",
    # "avif" or "original" (the quality guard kept the file itself)
    content: str = "raw"
    image: dict | None = None  # width, height, channels of the rendered PNG
    choice: dict | None = None  # why the encoder stored what it did: floor, candidates' bytes and scores
    original_size: int = 0
    stored_size: int = 0
    target: str | None = None
    parent: int = 0  # directories only
    name: str = ""  # the last name it was linked under, for log messages
    xattrs: dict[str, str] = field(default_factory=dict)  # name -> base64 value

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Inode":
        return cls(**json.loads(data))

    @property
    def is_dir(self) -> bool:
        return self.kind == "dir"


class _InodeCache:
    """Decoded inodes for readers, so that stat and lookup do not parse records again.

    Any committed write clears it and bumps the epoch; a reader only fills it if no write
    has committed since its transaction began, so the cache never holds a stale record.
    Inodes from read paths are shared and must be treated as read-only; write transactions
    never use the cache, so what they modify is always their own fresh copy.
    """

    LIMIT = 200_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, Inode] = {}
        self.epoch = 0

    def get(self, ino: int) -> Inode | None:
        return self._items.get(ino)

    def put(self, epoch: int, inode: Inode) -> None:
        with self._lock:
            if epoch == self.epoch:
                if len(self._items) >= self.LIMIT:
                    self._items.clear()
                self._items[inode.ino] = inode

    @contextmanager
    def writing(self):
        try:
            yield
        finally:
            with self._lock:
                self.epoch += 1
                self._items.clear()


def ino_key(ino: int) -> bytes:
    return struct.pack(">Q", ino)


def dirent_key(parent: int, name: str) -> bytes:
    return ino_key(parent) + name.encode("utf-8", "surrogateescape")


def now_ns() -> int:
    return time.time_ns()


class _ResizeLock:
    """Transactions share it; growing the map needs it exclusively (LMDB requires no live txn)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._resizing = False

    @contextmanager
    def shared(self):
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self):
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._resizing = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


class Store:
    """A filesystem tree, its file contents and the encode queue, in one LMDB environment."""

    def __init__(self, path: str | Path, create: bool = True, config: dict | None = None,
                 map_size: int = INITIAL_MAP_SIZE, lock: bool = True, readonly: bool = False) -> None:
        self.path = Path(path).absolute()  # libfuse may change the working directory under us
        if not (self.path / "data.mdb").exists():
            if not create:
                raise StoreError(f"{self.path}: no sdfs store here")
            self.path.mkdir(parents=True, exist_ok=True)
        self._lock_file = self._take_lock() if lock else None
        try:
            existing = (self.path / "data.mdb").stat().st_size if (self.path / "data.mdb").exists() else 0
            self.env = lmdb.open(str(self.path), map_size=max(map_size, existing), max_dbs=8, subdir=True,
                                 readonly=readonly, lock=True, metasync=True, sync=True)
        except lmdb.Error as exc:
            raise StoreError(f"{self.path}: cannot open LMDB: {exc}") from None
        self._dbs = {name: self.env.open_db(name.encode(), create=not readonly)
                     for name in ("config", "inodes", "dirents", "blobs", "queue")}
        self._resize = _ResizeLock()
        self._cache = _InodeCache()
        self._reader = threading.local()  # .epoch: the cache epoch of this thread's read transaction
        if not readonly:
            self._initialise(config or {})

    def _take_lock(self):
        handle = open(self.path / "lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StoreLockedError(f"{self.path} is in use by {holder} (a mount or another sdfs command); "
                                   "unmount it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        return handle

    def close(self) -> None:
        self.env.close()
        if self._lock_file:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- transactions -----------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction]:
        with self._resize.shared():
            outer = getattr(self._reader, "epoch", None)
            self._reader.epoch = self._cache.epoch
            try:
                with self.env.begin() as txn:
                    yield txn
            finally:
                self._reader.epoch = outer

    def write(self, fn):
        """Run ``fn(txn)`` in one write transaction, growing the map and retrying when it is full."""
        while True:
            try:
                with self._resize.shared(), self._cache.writing():
                    with self.env.begin(write=True) as txn:
                        outer = getattr(self._reader, "epoch", None)
                        self._reader.epoch = None  # a writer sees its own uncommitted records, never the cache
                        try:
                            return fn(txn)
                        finally:
                            self._reader.epoch = outer
            except lmdb.MapFullError:
                self._grow()
            except lmdb.Error as exc:
                # LMDB reports a failed write of a full disk as EIO; say what it is
                if "No space left" in str(exc) or self._disk_nearly_full():
                    raise FsError(errno.ENOSPC, f"{self.path}: disk full ({exc})") from None
                raise

    def _disk_nearly_full(self) -> bool:
        disk = os.statvfs(self.path)
        free = disk.f_bavail * disk.f_frsize
        return free < max(16 << 20, disk.f_blocks * disk.f_frsize // 100)

    def _grow(self) -> None:
        with self._resize.exclusive():
            size = self.env.info()["map_size"] * 2
            self.env.set_mapsize(size)

    def _initialise(self, config: dict) -> None:
        def init(txn):
            if txn.get(b"format", db=self._dbs["config"]) is None:
                txn.put(b"format", str(FORMAT_VERSION).encode(), db=self._dbs["config"])
                txn.put(b"settings", json.dumps(config).encode(), db=self._dbs["config"])
                txn.put(b"next_ino", str(ROOT_INO + 1).encode(), db=self._dbs["config"])
                t = now_ns()
                root = Inode(ROOT_INO, "dir", stat.S_IFDIR | 0o755, os.getuid(), os.getgid(), nlink=2, atime_ns=t,
                             mtime_ns=t, ctime_ns=t, parent=ROOT_INO, content="")
                txn.put(ino_key(ROOT_INO), root.to_bytes(), db=self._dbs["inodes"])
            version = int(txn.get(b"format", db=self._dbs["config"]))
            if version != FORMAT_VERSION:
                raise StoreError(f"{self.path}: store format {version}, this sdfs reads {FORMAT_VERSION}")

        self.write(init)

    @property
    def settings(self) -> dict:
        with self.read() as txn:
            return json.loads(txn.get(b"settings", db=self._dbs["config"]) or b"{}")

    def update_settings(self, values: dict) -> None:
        def put(txn):
            current = json.loads(txn.get(b"settings", db=self._dbs["config"]) or b"{}")
            current.update(values)
            txn.put(b"settings", json.dumps(current).encode(), db=self._dbs["config"])

        self.write(put)

    # --- inodes and names -------------------------------------------------------------------
    def _get(self, txn, ino: int) -> Inode:
        epoch = getattr(self._reader, "epoch", None)
        cached = self._cache.get(ino) if epoch is not None else None
        if cached is not None:
            return cached
        data = txn.get(ino_key(ino), db=self._dbs["inodes"])
        if data is None:
            raise FsError(errno.ENOENT, f"inode {ino}")
        inode = Inode.from_bytes(data)
        if epoch is not None:
            self._cache.put(epoch, inode)
        return inode

    def _put(self, txn, inode: Inode) -> None:
        txn.put(ino_key(inode.ino), inode.to_bytes(), db=self._dbs["inodes"])

    def get(self, ino: int) -> Inode:
        with self.read() as txn:
            return self._get(txn, ino)

    def _lookup(self, txn, parent: int, name: str) -> int | None:
        value = txn.get(dirent_key(parent, name), db=self._dbs["dirents"])
        return None if value is None else struct.unpack(">Q", value)[0]

    def _resolve(self, txn, path: str) -> Inode:
        inode = self._get(txn, ROOT_INO)
        for part in _parts(path):
            if not inode.is_dir:
                raise FsError(errno.ENOTDIR, path)
            child = self._lookup(txn, inode.ino, part)
            if child is None:
                raise FsError(errno.ENOENT, path)
            inode = self._get(txn, child)
        return inode

    def resolve(self, path: str) -> Inode:
        with self.read() as txn:
            return self._resolve(txn, path)

    def _parent_and_name(self, txn, path: str) -> tuple[Inode, str]:
        parts = _parts(path)
        if not parts:
            raise FsError(errno.EEXIST, "/")
        parent = self._resolve(txn, "/".join(parts[:-1]))
        if not parent.is_dir:
            raise FsError(errno.ENOTDIR, path)
        if len(parts[-1].encode("utf-8", "surrogateescape")) > 255:
            raise FsError(errno.ENAMETOOLONG, path)
        return parent, parts[-1]

    def listdir(self, path: str, dots: bool = False) -> list[tuple[str, Inode]]:
        """Names and inodes of a directory (led by "." and ".." if ``dots``), in one read transaction."""
        with self.read() as txn:
            directory = self._resolve(txn, path)
            if not directory.is_dir:
                raise FsError(errno.ENOTDIR, path)
            prefix = ino_key(directory.ino)
            out = [(".", directory), ("..", self._get(txn, directory.parent or ROOT_INO))] if dots else []
            cursor = txn.cursor(db=self._dbs["dirents"])
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    out.append((key[8:].decode("utf-8", "surrogateescape"),
                                self._get(txn, struct.unpack(">Q", value)[0])))
            return out

    def _next_ino(self, txn) -> int:
        ino = int(txn.get(b"next_ino", db=self._dbs["config"]))
        txn.put(b"next_ino", str(ino + 1).encode(), db=self._dbs["config"])
        return ino

    def create(self, path: str, kind: str, mode: int, uid: int, gid: int, target: str | None = None,
               exclusive: bool = True) -> Inode:
        """Make a file, directory or symlink at ``path``; returns the new (or, if not exclusive, existing) inode."""
        type_bits = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "symlink": stat.S_IFLNK}[kind]

        def make(txn):
            parent, name = self._parent_and_name(txn, path)
            existing = self._lookup(txn, parent.ino, name)
            if existing is not None:
                if exclusive or kind != "file":
                    raise FsError(errno.EEXIST, path)
                return self._get(txn, existing)
            t = now_ns()
            inode = Inode(self._next_ino(txn), kind, type_bits | (mode & 0o7777), uid, gid,
                          nlink=2 if kind == "dir" else 1, atime_ns=t, mtime_ns=t, ctime_ns=t,
                          content="" if kind != "file" else "raw", target=target,
                          size=len(target.encode("utf-8", "surrogateescape")) if target else 0,
                          parent=parent.ino if kind == "dir" else 0, name=name)
            self._put(txn, inode)
            if kind == "file":
                txn.put(ino_key(inode.ino) + ORIGINAL, b"", db=self._dbs["blobs"])
            txn.put(dirent_key(parent.ino, name), ino_key(inode.ino), db=self._dbs["dirents"])
            parent.mtime_ns = parent.ctime_ns = t
            if kind == "dir":
                parent.nlink += 1
            self._put(txn, parent)
            return inode

        return self.write(make)

    def link(self, existing: str, new: str) -> Inode:
        def make(txn):
            inode = self._resolve(txn, existing)
            if inode.is_dir:
                raise FsError(errno.EPERM, existing)
            parent, name = self._parent_and_name(txn, new)
            if self._lookup(txn, parent.ino, name) is not None:
                raise FsError(errno.EEXIST, new)
            txn.put(dirent_key(parent.ino, name), ino_key(inode.ino), db=self._dbs["dirents"])
            t = now_ns()
            inode.nlink += 1
            inode.ctime_ns = t
            parent.mtime_ns = parent.ctime_ns = t
            self._put(txn, inode)
            self._put(txn, parent)
            return inode

        return self.write(make)

    def unlink(self, path: str, directory: bool = False) -> Inode:
        """Remove a name. Returns the inode; when its nlink reaches 0 the caller purges it."""

        def remove(txn):
            parent, name = self._parent_and_name(txn, path)
            child = self._lookup(txn, parent.ino, name)
            if child is None:
                raise FsError(errno.ENOENT, path)
            inode = self._get(txn, child)
            if directory and not inode.is_dir:
                raise FsError(errno.ENOTDIR, path)
            if not directory and inode.is_dir:
                raise FsError(errno.EISDIR, path)
            if inode.is_dir and self._has_children(txn, inode.ino):
                raise FsError(errno.ENOTEMPTY, path)
            txn.delete(dirent_key(parent.ino, name), db=self._dbs["dirents"])
            t = now_ns()
            parent.mtime_ns = parent.ctime_ns = t
            if inode.is_dir:
                parent.nlink -= 1
                inode.nlink = 0
            else:
                inode.nlink -= 1
            inode.ctime_ns = t
            self._put(txn, parent)
            self._put(txn, inode)
            return inode

        return self.write(remove)

    def _has_children(self, txn, ino: int) -> bool:
        cursor = txn.cursor(db=self._dbs["dirents"])
        prefix = ino_key(ino)
        return cursor.set_range(prefix) and cursor.key().startswith(prefix)

    def purge(self, ino: int) -> None:
        """Delete an inode with no names left, with its content and queue entry."""

        def drop(txn):
            data = txn.get(ino_key(ino), db=self._dbs["inodes"])
            if data is None or Inode.from_bytes(data).nlink > 0:
                return
            txn.delete(ino_key(ino), db=self._dbs["inodes"])
            for kind in (ORIGINAL, LATENT, AVIF, METADATA):
                txn.delete(ino_key(ino) + kind, db=self._dbs["blobs"])
            txn.delete(ino_key(ino), db=self._dbs["queue"])

        self.write(drop)

    def purge_orphans(self) -> int:
        """Inodes left with no names by a crash between unlink and purge; returns how many."""
        with self.read() as txn:
            inodes = (Inode.from_bytes(v) for _, v in txn.cursor(db=self._dbs["inodes"]))
            orphans = [inode.ino for inode in inodes if inode.nlink <= 0]
        for ino in orphans:
            self.purge(ino)
        return len(orphans)

    def rename(self, old: str, new: str, flags: int = 0) -> Inode | None:
        """Move a name; returns an inode whose last name was replaced (to purge), or None."""

        def move(txn):
            old_parent, old_name = self._parent_and_name(txn, old)
            new_parent, new_name = self._parent_and_name(txn, new)
            if new_parent.ino == old_parent.ino:
                new_parent = old_parent  # one record, so that every nlink/time edit lands
            moving_ino = self._lookup(txn, old_parent.ino, old_name)
            if moving_ino is None:
                raise FsError(errno.ENOENT, old)
            moving = self._get(txn, moving_ino)
            target_ino = self._lookup(txn, new_parent.ino, new_name)
            if moving.is_dir and self._is_ancestor(txn, moving.ino, new_parent.ino):
                raise FsError(errno.EINVAL, f"cannot move {old} into itself")
            if flags & RENAME_NOREPLACE and target_ino is not None:
                raise FsError(errno.EEXIST, new)
            if flags & RENAME_EXCHANGE:
                return self._exchange(txn, old_parent, old_name, new_parent, new_name, moving, target_ino, new)
            if target_ino == moving.ino:
                return None
            replaced = None
            if target_ino is not None:
                replaced = self._get(txn, target_ino)
                if replaced.is_dir != moving.is_dir:
                    raise FsError(errno.EISDIR if replaced.is_dir else errno.ENOTDIR, new)
                if replaced.is_dir and self._has_children(txn, replaced.ino):
                    raise FsError(errno.ENOTEMPTY, new)
                replaced.nlink = 0 if replaced.is_dir else replaced.nlink - 1
                if replaced.is_dir:
                    new_parent.nlink -= 1
                self._put(txn, replaced)
            txn.delete(dirent_key(old_parent.ino, old_name), db=self._dbs["dirents"])
            txn.put(dirent_key(new_parent.ino, new_name), ino_key(moving.ino), db=self._dbs["dirents"])
            t = now_ns()
            moving.ctime_ns = t
            moving.name = new_name
            if moving.is_dir and old_parent.ino != new_parent.ino:
                moving.parent = new_parent.ino
                old_parent.nlink -= 1
                new_parent.nlink += 1
            self._put(txn, moving)
            old_parent.mtime_ns = old_parent.ctime_ns = t
            self._put(txn, old_parent)
            if new_parent is not old_parent:
                new_parent.mtime_ns = new_parent.ctime_ns = t
                self._put(txn, new_parent)
            return replaced if replaced is not None and replaced.nlink <= 0 else None

        return self.write(move)

    def _exchange(self, txn, old_parent, old_name, new_parent, new_name, moving, target_ino, new):
        if target_ino is None:
            raise FsError(errno.ENOENT, new)
        other = self._get(txn, target_ino)
        txn.put(dirent_key(old_parent.ino, old_name), ino_key(other.ino), db=self._dbs["dirents"])
        txn.put(dirent_key(new_parent.ino, new_name), ino_key(moving.ino), db=self._dbs["dirents"])
        t = now_ns()
        for inode, parent in ((moving, new_parent), (other, old_parent)):
            inode.ctime_ns = t
            if inode.is_dir:
                inode.parent = parent.ino
            self._put(txn, inode)
        if old_parent.ino != new_parent.ino and moving.is_dir != other.is_dir:
            delta = 1 if moving.is_dir else -1
            new_parent.nlink += delta
            old_parent.nlink -= delta
        for parent in {old_parent.ino: old_parent, new_parent.ino: new_parent}.values():
            parent.mtime_ns = parent.ctime_ns = t
            self._put(txn, parent)
        return None

    def _is_ancestor(self, txn, ancestor: int, ino: int) -> bool:
        while True:
            if ino == ancestor:
                return True
            if ino == ROOT_INO:
                return False
            ino = self._get(txn, ino).parent

    def update(self, ino: int, **changes) -> Inode:
        """Change attributes of an inode (mode, uid, gid, times, xattrs...) in one transaction."""

        def apply(txn):
            inode = self._get(txn, ino)
            for key, value in changes.items():
                setattr(inode, key, value)
            self._put(txn, inode)
            return inode

        return self.write(apply)

    # --- content ----------------------------------------------------------------------------
    def set_content(self, ino: int, data: bytes, size: int, image: dict | None, metadata: bytes = b"",
                    queue: bool = False, mtime_ns: int | None = None) -> Inode:
        """Commit a file's bytes, its visible size and (for images) a queue entry, in one transaction."""

        def commit(txn):
            inode = self._get(txn, ino)
            if inode.nlink <= 0:
                return inode  # unlinked while open: nothing to keep
            key = ino_key(ino)
            txn.put(key + ORIGINAL, data, db=self._dbs["blobs"])
            for kind in BLOB_OF_CONTENT.values():
                txn.delete(key + kind, db=self._dbs["blobs"])
            if metadata:
                txn.put(key + METADATA, metadata, db=self._dbs["blobs"])
            else:
                txn.delete(key + METADATA, db=self._dbs["blobs"])
            t = now_ns()
            inode.generation += 1
            inode.content = "image" if image else "raw"
            inode.image = image
            inode.choice = None
            inode.size = size
            inode.original_size = len(data)
            inode.stored_size = len(data)
            inode.ctime_ns = t
            if mtime_ns is not None:
                inode.mtime_ns = mtime_ns
            if queue:
                txn.put(key, struct.pack(">Q", inode.generation), db=self._dbs["queue"])
            else:
                txn.delete(key, db=self._dbs["queue"])
            self._put(txn, inode)
            return inode

        return self.write(commit)

    def blob(self, ino: int, kind: bytes) -> bytes | None:
        with self.read() as txn:
            return txn.get(ino_key(ino) + kind, db=self._dbs["blobs"])

    def read_range(self, ino: int, kind: bytes, offset: int, size: int) -> bytes:
        """A slice of a stored value, without copying the rest of it."""
        with self._resize.shared(), self.env.begin(buffers=True) as txn:
            value = txn.get(ino_key(ino) + kind, db=self._dbs["blobs"])
            return b"" if value is None else bytes(value[offset:offset + size])

    def content_for(self, inode: Inode) -> tuple[Inode, bytes | None, bytes | None]:
        """The current inode with its latent blob (or original bytes) and metadata, read consistently."""
        with self.read() as txn:
            current = self._get(txn, inode.ino)
            key = ino_key(current.ino)
            kind = BLOB_OF_CONTENT.get(current.content, ORIGINAL)
            return current, txn.get(key + kind, db=self._dbs["blobs"]), txn.get(key + METADATA, db=self._dbs["blobs"])

    def queued(self, limit: int = 64) -> list[tuple[int, int]]:
        with self.read() as txn:
            out = []
            for key, value in txn.cursor(db=self._dbs["queue"]):
                out.append((struct.unpack(">Q", key)[0], struct.unpack(">Q", value)[0]))
                if len(out) >= limit:
                    break
            return out

    def queue_length(self) -> int:
        with self.read() as txn:
            return txn.stat(self._dbs["queue"])["entries"]

    def finish_encode(self, ino: int, generation: int, kind: str, blob: bytes | None, keep_original: bool,
                      choice: dict | None = None) -> bool:
        """Swap in what the encoder chose (``kind`` latent, avif or original) if the content is still
        the one that was queued; ``choice`` (the guard's scores, or the error) is kept on the inode.

        ``kind="original"`` with ``blob=None`` keeps the original file: the guard chose it, or encoding failed.
        """

        def swap(txn):
            key = ino_key(ino)
            queued = txn.get(key, db=self._dbs["queue"])
            if queued is None or struct.unpack(">Q", queued)[0] != generation:
                return False
            txn.delete(key, db=self._dbs["queue"])
            data = txn.get(key, db=self._dbs["inodes"])
            if data is None:
                return False
            inode = Inode.from_bytes(data)
            inode.choice = choice
            inode.content = kind
            inode.stored_size = inode.original_size
            if kind != "original":
                txn.put(key + BLOB_OF_CONTENT[kind], blob, db=self._dbs["blobs"])
                inode.stored_size = len(blob)
                if keep_original:
                    inode.stored_size += inode.original_size
                else:
                    txn.delete(key + ORIGINAL, db=self._dbs["blobs"])
            self._put(txn, inode)
            return True

        return self.write(swap)

    # --- inspection and repair -----------------------------------------------------------------
    def db(self, name: str):
        return self._dbs[name]

    def requeue(self, ino: int, generation: int) -> None:
        self.write(lambda txn: txn.put(ino_key(ino), struct.pack(">Q", generation), db=self._dbs["queue"]))

    def delete_key(self, db_name: str, key: bytes) -> None:
        self.write(lambda txn: txn.delete(key, db=self._dbs[db_name]))

    def adopt(self, ino: int) -> str:
        """Give an orphaned file a name in /lost+found; returns the path."""
        try:
            self.create("/lost+found", "dir", 0o700, os.getuid(), os.getgid())
        except FsError:
            pass

        def link(txn):
            parent = self._resolve(txn, "/lost+found")
            inode = self._get(txn, ino)
            inode.nlink = 1
            txn.put(dirent_key(parent.ino, f"inode-{ino}"), ino_key(ino), db=self._dbs["dirents"])
            self._put(txn, inode)

        self.write(link)
        return f"/lost+found/inode-{ino}"

    def inodes(self) -> Iterator[Inode]:
        with self.read() as txn:
            for _, value in txn.cursor(db=self._dbs["inodes"]):
                yield Inode.from_bytes(value)

    def counts(self) -> dict[str, int]:
        with self.read() as txn:
            return {name: txn.stat(db)["entries"] for name, db in self._dbs.items()}

    def disk_usage(self) -> int:
        return sum(f.stat().st_size for f in self.path.glob("*.mdb"))


def encode_xattr(value: bytes) -> str:
    return base64.b64encode(value).decode()


def decode_xattr(value: str) -> bytes:
    return base64.b64decode(value)


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]
