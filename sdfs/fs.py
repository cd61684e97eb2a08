"""FUSE operations (mfusepy): a thin map from POSIX calls onto the store and the service."""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import logging
import os
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import mfusepy

from .guard import describe
from .service import Service
from .store import FsError, Inode, Store, decode_xattr, encode_xattr, now_ns

log = logging.getLogger(__name__)

SPILL_BYTES = 64 << 20  # write buffers larger than this spill to a file under STORE/tmp
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
SDFS_XATTRS = ("user.sdfs.codec", "user.sdfs.guard", "user.sdfs.stored_bytes", "user.sdfs.original_bytes",
               "user.sdfs.ratio")
ENOATTR = getattr(errno, "ENOATTR", errno.ENODATA)
FUSE_READDIR_PLUS, FUSE_FILL_DIR_PLUS = 1, 2  # libfuse 3: readdir flags in, filler flags out
FUSE_CAP_READDIRPLUS_AUTO = 1 << 14


@dataclass
class Handle:
    ino: int
    writable: bool
    buffer: tempfile.SpooledTemporaryFile | None = None
    dirty: bool = False
    view: bytes | None = None  # the rendered PNG this reader started on: never a mix of two versions
    written_ns: int | None = None  # time of the last write, the mtime to commit (unless utimens came after)


def _logged(method):
    """Return POSIX errors as they are; log anything else with the path and answer EIO."""

    @functools.wraps(method)
    def run(self, path, *args, **kwargs):
        try:
            return method(self, path, *args, **kwargs)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - the daemon must answer, and say what failed
            log.error("%s %s: %s: %s", method.__name__, path, type(exc).__name__, exc)
            raise mfusepy.FuseOSError(errno.EIO) from None

    return run


class SdfsOperations(mfusepy.Operations):
    use_ns = True

    def __init__(self, store: Store, service: Service, readonly: bool = False,
                 mountpoint: str | None = None) -> None:
        self.store = store
        self.mountpoint = mountpoint
        self.service = service
        self.readonly = readonly
        self.spill_dir = store.path / "tmp"
        self.spill_dir.mkdir(exist_ok=True)
        self._handles: dict[int, Handle] = {}
        self.getattr_calls = 0  # FUSE getattr/lookup requests served: listings should make most unnecessary
        self._listings: dict[int, list[tuple[str, Inode]] | None] = {}  # open directories
        self._open_count: dict[int, int] = {}
        self._next_fh = 1
        self._lock = threading.Lock()

    # --- attributes -------------------------------------------------------------------------
    def _attrs(self, inode: Inode) -> dict:
        size = self._dirty_size(inode.ino)
        return {
            "st_ino": inode.ino, "st_mode": inode.mode, "st_nlink": inode.nlink, "st_uid": inode.uid,
            "st_gid": inode.gid, "st_size": inode.size if size is None else size,
            "st_atime": inode.atime_ns, "st_mtime": inode.mtime_ns, "st_ctime": inode.ctime_ns,
            "st_blocks": (inode.stored_size + 511) // 512, "st_blksize": 128 * 1024,
        }

    def _dirty_size(self, ino: int) -> int | None:
        with self._lock:
            sizes = [_buffer_size(h.buffer) for h in self._handles.values() if h.ino == ino and h.dirty and h.buffer]
        return max(sizes) if sizes else None

    @_logged
    def getattr(self, path, fh=None):
        self.getattr_calls += 1
        if fh is not None and fh in self._handles:
            return self._attrs(self.store.get(self._handles[fh].ino))
        return self._attrs(self.store.resolve(path))

    @_logged
    def opendir(self, path):
        if not self.store.resolve(path).is_dir:
            raise FsError(errno.ENOTDIR, path)
        with self._lock:
            fh = self._next_fh
            self._next_fh += 1
            self._listings[fh] = None
        return fh

    @_logged
    def readdir_with_offset(self, path, offset, fh):
        """Entries from ``offset`` on, each with its attributes and the offset of the entry after it.

        The listing is read from the store once per open directory (again on rewinddir), so the
        kernel's successive requests page through one consistent snapshot.
        """
        listing = self._listings.get(fh)
        if offset == 0 or listing is None:
            listing = self.store.listdir(path, dots=True)
            self._listings[fh] = listing
        for index in range(offset, len(listing)):
            name, inode = listing[index]
            yield name, self._attrs(inode), index + 1

    @_logged
    def releasedir(self, path, fh):
        self._listings.pop(fh, None)
        return 0

    @_logged
    def chmod(self, path, mode):
        self._writable()
        inode = self.store.resolve(path)
        self.store.update(inode.ino, mode=stat.S_IFMT(inode.mode) | (mode & 0o7777), ctime_ns=now_ns())

    @_logged
    def chown(self, path, uid, gid):
        self._writable()
        inode = self.store.resolve(path)
        self.store.update(inode.ino, uid=inode.uid if uid < 0 else uid, gid=inode.gid if gid < 0 else gid,
                          ctime_ns=now_ns())

    @_logged
    def utimens(self, path, times=None):
        self._writable()
        inode = self.store.resolve(path)
        t = now_ns()
        atime, mtime = times if times is not None else (t, t)
        changes = {"ctime_ns": t}
        for key, value, old in (("atime_ns", atime, inode.atime_ns), ("mtime_ns", mtime, inode.mtime_ns)):
            changes[key] = t if value == UTIME_NOW else old if value == UTIME_OMIT else int(value)
        self.store.update(inode.ino, **changes)
        with self._lock:
            for handle in self._handles.values():
                if handle.ino == inode.ino:
                    handle.written_ns = None  # cp -p sets times after writing: keep them at commit

    # --- namespace --------------------------------------------------------------------------
    def _context(self) -> tuple[int, int]:
        uid, gid, _ = mfusepy.fuse_get_context()
        return uid, gid

    def _writable(self) -> None:
        if self.readonly:
            raise FsError(errno.EROFS)

    @_logged
    def mkdir(self, path, mode):
        self._writable()
        self.store.create(path, "dir", mode, *self._context())

    @_logged
    def rmdir(self, path):
        self._writable()
        self.store.unlink(path, directory=True)

    @_logged
    def unlink(self, path):
        self._writable()
        inode = self.store.unlink(path)
        self._purge_if_unused(inode.ino, inode.nlink)

    def _purge_if_unused(self, ino: int, nlink: int) -> None:
        if nlink <= 0:
            self.service.cache.drop(ino)
            with self._lock:
                busy = self._open_count.get(ino, 0) > 0
            if not busy:
                self.store.purge(ino)

    @_logged
    def rename(self, old, new, flags=0):
        self._writable()
        replaced = self.store.rename(old, new, flags)
        if replaced is not None:
            self._purge_if_unused(replaced.ino, replaced.nlink)

    @_logged
    def symlink(self, target, source):
        self._writable()
        self.store.create(target, "symlink", 0o777, *self._context(), target=source)

    @_logged
    def readlink(self, path):
        inode = self.store.resolve(path)
        if inode.kind != "symlink":
            raise FsError(errno.EINVAL, path)
        return inode.target

    @_logged
    def link(self, target, source):
        self._writable()
        self.store.link(source, target)

    @_logged
    def statfs(self, path):
        disk = os.statvfs(self.store.path)
        files = self.store.counts()["inodes"]
        return {
            "f_bsize": disk.f_bsize, "f_frsize": disk.f_frsize, "f_blocks": disk.f_blocks, "f_bfree": disk.f_bfree,
            "f_bavail": disk.f_bavail, "f_files": files + disk.f_ffree, "f_ffree": disk.f_ffree,
            "f_favail": disk.f_favail, "f_namemax": 255,
        }

    # --- files ------------------------------------------------------------------------------
    def _new_handle(self, handle: Handle) -> int:
        with self._lock:
            fh = self._next_fh
            self._next_fh += 1
            self._handles[fh] = handle
            self._open_count[handle.ino] = self._open_count.get(handle.ino, 0) + 1
        return fh

    @_logged
    def create(self, path, mode, flags=0):
        self._writable()
        inode = self.store.create(path, "file", mode, *self._context(), exclusive=False)
        return self._new_handle(Handle(inode.ino, True, self._empty_buffer(), dirty=True))

    @_logged
    def open(self, path, flags):
        inode = self.store.resolve(path)
        if inode.is_dir:
            raise FsError(errno.EISDIR, path)
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        if writable:
            self._writable()
        handle = Handle(inode.ino, writable)
        if writable and flags & os.O_TRUNC:
            handle.buffer, handle.dirty, handle.written_ns = self._empty_buffer(), True, now_ns()
        return self._new_handle(handle)

    def _empty_buffer(self) -> tempfile.SpooledTemporaryFile:
        return tempfile.SpooledTemporaryFile(max_size=SPILL_BYTES, dir=self.spill_dir)

    def _load_buffer(self, handle: Handle) -> None:
        """Copy-on-write: a writer that did not truncate starts from the file as the mount shows it."""
        if handle.buffer is not None:
            return
        inode = self.store.get(handle.ino)
        handle.buffer = self._empty_buffer()
        handle.buffer.write(self.service.read(inode, inode.size, 0))

    @_logged
    def read(self, path, size, offset, fh):
        handle = self._handles.get(fh)
        if handle is not None and handle.view is not None:
            return handle.view[offset:offset + size]
        if handle is not None and handle.buffer is not None:
            with self._lock:
                handle.buffer.seek(offset)
                return handle.buffer.read(size)
        inode = self.store.get(handle.ino) if handle else self.store.resolve(path)
        if inode.content == "raw" or handle is None:
            return self.service.read(inode, size, offset)
        if handle.view is None:
            handle.view = self.service.view(inode)
        return handle.view[offset:offset + size]

    @_logged
    def write(self, path, data, offset, fh):
        handle = self._handles[fh]
        if not handle.writable:
            raise FsError(errno.EBADF, path)
        self._load_buffer(handle)
        with self._lock:
            end = _buffer_size(handle.buffer)
            if offset > end:
                handle.buffer.seek(end)
                _write_zeros(handle.buffer, offset - end)
            handle.buffer.seek(offset)
            handle.buffer.write(data)
            handle.dirty = True
            handle.written_ns = now_ns()
        return len(data)

    @_logged
    def truncate(self, path, length, fh=None):
        self._writable()
        handle = self._handles.get(fh) if fh is not None else None
        if handle is None:
            inode = self.store.resolve(path)
            handle = Handle(inode.ino, True, written_ns=now_ns())
            self._load_buffer(handle)
            _resize(handle.buffer, length)
            self._commit(handle, inode)
            handle.buffer.close()
            return
        self._load_buffer(handle)
        with self._lock:
            _resize(handle.buffer, length)
            handle.dirty = True
            handle.written_ns = now_ns()

    @_logged
    def flush(self, path, fh):
        """close() waits for flush, not for release: so this is where written bytes become durable."""
        self._commit_if_dirty(fh)

    @_logged
    def fsync(self, path, datasync, fh):
        self._commit_if_dirty(fh)

    def _commit_if_dirty(self, fh: int) -> None:
        handle = self._handles.get(fh)
        if handle is not None and handle.dirty:
            handle.dirty = False
            self._commit(handle, self.store.get(handle.ino))

    @_logged
    def release(self, path, fh):
        with self._lock:
            handle = self._handles.pop(fh, None)
            if handle is None:
                return
            self._open_count[handle.ino] -= 1
            last = self._open_count[handle.ino] == 0
            if last:
                del self._open_count[handle.ino]
        try:
            if handle.dirty:
                self._commit(handle, self.store.get(handle.ino))
        finally:
            if handle.buffer is not None:
                handle.buffer.close()
        if last:
            try:
                inode = self.store.get(handle.ino)
            except FsError:
                return
            if inode.nlink <= 0:
                self.store.purge(inode.ino)

    def _commit(self, handle: Handle, inode: Inode) -> None:
        with self._lock:
            handle.buffer.seek(0)
            data = handle.buffer.read()
            mtime, handle.written_ns = handle.written_ns, None
        self.service.ingest(inode, data, mtime_ns=mtime)

    # --- extended attributes ------------------------------------------------------------------
    @_logged
    def setxattr(self, path, name, value, options, position=0):
        self._writable()
        if name.startswith("user.sdfs."):
            raise FsError(errno.EPERM, f"{name} is read-only")
        if not name.startswith("user."):
            raise FsError(errno.ENOTSUP, name)
        inode = self.store.resolve(path)
        exists = name in inode.xattrs
        if options == os.XATTR_CREATE and exists:
            raise FsError(errno.EEXIST, name)
        if options == os.XATTR_REPLACE and not exists:
            raise FsError(ENOATTR, name)
        self.store.update(inode.ino, xattrs={**inode.xattrs, name: encode_xattr(bytes(value))}, ctime_ns=now_ns())

    @_logged
    def getxattr(self, path, name, position=0):
        if not name.startswith("user."):
            # ACLs and security labels are not kept. ENOTSUP (not ENOATTR) lets `ls -l` learn that once
            # per listing instead of asking every file, as it must ask a filesystem that might have them.
            raise FsError(errno.ENOTSUP, name)
        inode = self.store.resolve(path)
        if name.startswith("user.sdfs."):
            value = self._sdfs_xattr(inode, name)
            if value is None:
                raise FsError(ENOATTR, name)
            return value.encode()
        if name not in inode.xattrs:
            raise FsError(ENOATTR, name)
        return decode_xattr(inode.xattrs[name])

    @_logged
    def listxattr(self, path):
        inode = self.store.resolve(path)
        names = list(inode.xattrs)
        if inode.kind == "file":
            names += list(SDFS_XATTRS)
        return names

    @_logged
    def removexattr(self, path, name):
        self._writable()
        if name.startswith("user.sdfs."):
            raise FsError(errno.EPERM, f"{name} is read-only")
        if not name.startswith("user."):
            raise FsError(errno.ENOTSUP, name)
        inode = self.store.resolve(path)
        if name not in inode.xattrs:
            raise FsError(ENOATTR, name)
        self.store.update(inode.ino, xattrs={k: v for k, v in inode.xattrs.items() if k != name}, ctime_ns=now_ns())

    def _sdfs_xattr(self, inode: Inode, name: str) -> str | None:
        if inode.ino == 1 and name == "user.sdfs.pid":
            return str(os.getpid())
        if inode.ino == 1 and name == "user.sdfs.stats":
            stats = self.service.stats
            return json.dumps({"decodes": stats.decodes, "decode_batches": self.service.decoder.batches,
                               "renders": stats.renders, "encodes": stats.encodes,
                               "encode_failures": stats.encode_failures, "queue": self.store.queue_length(),
                               "cache_bytes": self.service.cache.size, "getattrs": self.getattr_calls})
        if inode.kind != "file":
            return None
        if name == "user.sdfs.codec":
            return describe(inode.content, inode.choice)
        if name == "user.sdfs.guard":
            return json.dumps(inode.choice or {})
        if name == "user.sdfs.stored_bytes":
            return str(inode.stored_size)
        if name == "user.sdfs.original_bytes":
            return str(inode.original_size)
        if name == "user.sdfs.ratio":
            return f"{inode.original_size / inode.stored_size:.2f}" if inode.stored_size else "1.00"
        return None

    def init(self, path):
        """Tell systemd we are ready once the mount answers (the kernel waits for this INIT first)."""
        threading.Thread(target=self._announce_ready, name="sdfs-ready", daemon=True).start()

    def _announce_ready(self) -> None:
        from .notify import notify

        if self.mountpoint is not None:
            os.stat(self.mountpoint)
        notify(f"READY=1\nSTATUS=serving {self.store.path}")

    def destroy(self, path):
        from .notify import notify

        notify("STOPPING=1")
        self.service.stop()


class SdfsFUSE(mfusepy.FUSE):
    """Two things mfusepy leaves out: rename's flags, and attributes in READDIRPLUS replies."""

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        return self.operations.rename(old.decode(self.encoding, self.errors),
                                      new.decode(self.encoding, self.errors), flags)

    def init_fuse_3(self, conn, config) -> None:
        # READDIRPLUS on every listing request, not only the first: `ls -l` and file managers stat
        # each entry as they read the listing, and attributes that came with it cost no round trip
        if conn:
            conn.contents.want &= ~FUSE_CAP_READDIRPLUS_AUTO
        super().init_fuse_3(conn, config)

    def readdir_fuse_3(self, path: bytes | None, buf, filler, offset: int, fip, flags: int) -> int:
        """Page through the listing by offset, with each entry's attributes when the kernel asks (READDIRPLUS).

        mfusepy hands libfuse only the mode, so `ls -l` costs one LOOKUP round trip per file.
        libfuse 3.14 passes attributes on only for entries given with an offset, hence
        readdir_with_offset.
        """
        plus = bool(flags & FUSE_READDIR_PLUS)
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        st = mfusepy.c_stat()
        for name, attrs, next_offset in self.operations.readdir_with_offset(decoded, offset, fip.contents.fh):
            ctypes.memset(ctypes.byref(st), 0, ctypes.sizeof(st))
            mfusepy.set_st_attrs(st, attrs, use_ns=self.use_ns)
            if filler(buf, name.encode(self.encoding, self.errors), st, next_offset, FUSE_FILL_DIR_PLUS if plus else 0):
                break
        return 0


def _buffer_size(buffer) -> int:
    position = buffer.tell()
    buffer.seek(0, os.SEEK_END)
    size = buffer.tell()
    buffer.seek(position)
    return size


def _write_zeros(buffer, count: int) -> None:
    chunk = b"\0" * min(count, 1 << 20)
    while count > 0:
        buffer.write(chunk[:count])
        count -= len(chunk)


def _resize(buffer, length: int) -> None:
    size = _buffer_size(buffer)
    if length < size:
        buffer.truncate(length)
    elif length > size:
        buffer.seek(size)
        _write_zeros(buffer, length - size)


def mount(store: Store, service: Service, mountpoint: str | Path, foreground: bool = True, readonly: bool = False,
          allow_other: bool = False, extra_options: dict | None = None) -> None:
    """Serve the store at mountpoint until it is unmounted (blocks)."""
    ops = SdfsOperations(store, service, readonly=readonly, mountpoint=str(mountpoint))
    options = dict(foreground=foreground, default_permissions=True, use_ino=True,
                   fsname=f"sdfs:{store.path}", subtype="sdfs", attr_timeout=1.0, entry_timeout=1.0,
                   negative_timeout=0.0)
    if readonly:
        options["ro"] = True
    if allow_other:
        options["allow_other"] = True
    options.update(extra_options or {})
    try:
        SdfsFUSE(ops, str(mountpoint), **options)
    except RuntimeError as exc:
        # libfuse reports a loop ended by a signal as an error; it is the normal way to stop a daemon
        if os.path.ismount(mountpoint):
            raise
        log.info("FUSE loop ended (%s)", exc)
