"""``sdfs import``: bulk ingest of a folder into a store without a mount, batched on the device.

The result is the same tree a ``cp -r`` through a mount gives once its encoder has caught
up. Re-running skips files already imported with the same size and mtime, so an
interrupted import resumes where it stopped.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import stat
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .codec import Codec
from .guard import QualityGuard, prepare, run_task, settle
from .png import metadata_chunks, png_size
from .service import classify
from .store import FsError, Store

log = logging.getLogger(__name__)


@dataclass
class ImportReport:
    files: int = 0
    images: int = 0
    skipped: int = 0
    bytes_in: int = 0
    bytes_stored: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)  # images stored as latent / avif / original

    def summary(self) -> str:
        rate = self.bytes_in / self.seconds / 1e6 if self.seconds else 0.0
        ratio = self.bytes_in / self.bytes_stored if self.bytes_stored else 0.0
        failed = f", {len(self.failures)} failed" if self.failures else ""
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.kinds.most_common())
        return (f"imported {self.files} files ({self.images} images{': ' + kinds if kinds else ''}; "
                f"{self.skipped} already there), "
                f"{self.bytes_in / 1e6:.1f} MB -> {self.bytes_stored / 1e6:.2f} MB (x{ratio:.1f}), "
                f"{self.seconds:.1f} s, {rate:.2f} MB/s, {self.files / self.seconds if self.seconds else 0:.2f} files/s"
                f"{failed}")


def import_tree(source: Path, store: Store, codec: Codec, guard: QualityGuard, batch_size: int = 8,
                keep_originals: bool = False, progress: Callable[[int], None] | None = None,
                jobs: int = 1) -> ImportReport:
    """Import ``source`` into ``store``. With ``jobs`` > 1 the quality guard's CPU work (AVIF search,
    metrics) runs in that many worker processes while the device encodes the next batch."""
    report = ImportReport()
    started = time.perf_counter()
    with _Pipeline(store, codec, guard, jobs, keep_originals, report, progress) as pipeline:
        _import_files(source, store, codec, pipeline, report, progress, batch_size)
    report.seconds = time.perf_counter() - started
    return report


def _import_files(source, store, codec, pipeline, report, progress, batch_size) -> None:
    pending: list[tuple[Path, str, os.stat_result, bytes, object]] = []
    for path, rel in _walk(source):
        try:
            info = path.lstat()
            if _make_node(store, path, rel, info) or _already_imported(store, rel, info):
                report.skipped += 0 if stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode) else 1
                continue
            data = path.read_bytes()
            image = classify(data, codec.config.max_pixels, str(path))
        except (OSError, FsError) as exc:
            _fail(report, path, exc)
            continue
        if image is None:
            _commit_raw(store, rel, info, data)
            report.files += 1
            report.bytes_in += len(data)
            report.bytes_stored += len(data)
            if progress:
                progress(1)
            continue
        pending.append((path, rel, info, data, image))
        if len(pending) >= batch_size:
            pipeline.submit(pending)
            pending = []
    if pending:
        pipeline.submit(pending)


def count_files(source: Path) -> int:
    return sum(1 for path, _ in _walk(source) if path.is_file() and not path.is_symlink())


def _walk(source: Path):
    for root, dirs, files in os.walk(source):
        dirs.sort()
        base = Path(root)
        for name in dirs + sorted(files):
            path = base / name
            yield path, "/" + str(path.relative_to(source))


def _make_node(store: Store, path: Path, rel: str, info: os.stat_result) -> bool:
    """Create directories and symlinks (True); files return False to be imported."""
    if stat.S_ISDIR(info.st_mode):
        try:
            store.create(rel, "dir", info.st_mode, info.st_uid, info.st_gid)
        except FsError:
            pass  # already there from an earlier run
        return True
    if stat.S_ISLNK(info.st_mode):
        try:
            store.create(rel, "symlink", 0o777, info.st_uid, info.st_gid, target=os.readlink(path))
        except FsError:
            pass
        return True
    return not stat.S_ISREG(info.st_mode)


def _already_imported(store: Store, rel: str, info: os.stat_result) -> bool:
    try:
        inode = store.resolve(rel)
    except FsError:
        return False
    return inode.original_size == info.st_size and inode.mtime_ns == info.st_mtime_ns and inode.content != "image"


def _node(store: Store, rel: str, info: os.stat_result):
    inode = store.create(rel, "file", info.st_mode, info.st_uid, info.st_gid, exclusive=False)
    return store.update(inode.ino, mode=(inode.mode & ~0o7777) | (info.st_mode & 0o7777))


def _commit_raw(store: Store, rel: str, info: os.stat_result, data: bytes) -> None:
    inode = _node(store, rel, info)
    store.set_content(inode.ino, data, len(data), None, mtime_ns=info.st_mtime_ns)
    store.update(inode.ino, atime_ns=info.st_atime_ns)


class _Pipeline:
    """Batch k's guard work runs (in worker processes) while the device encodes batch k+1."""

    def __init__(self, store, codec, guard, jobs, keep_originals, report, progress) -> None:
        self.store, self.codec, self.guard = store, codec, guard
        self.keep_originals, self.report, self.progress = keep_originals, report, progress
        # spawn, not fork: a forked child of a process running torch's thread pool can hang
        self.pool = (ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
                     if jobs > 1 and guard.floor is not None else None)
        self.in_flight: tuple[list, list, list, list] | None = None

    def __enter__(self) -> "_Pipeline":
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.drain()
        finally:
            if self.pool:
                self.pool.shutdown(cancel_futures=True)

    def submit(self, pending: list) -> None:
        tasks, latents = prepare(self.codec, self.guard,
                                 [(str(path), image, data) for path, _, _, data, image in pending])
        work = [self.pool.submit(run_task, task) for task in tasks] if self.pool else [None] * len(tasks)
        self.drain()
        self.in_flight = (pending, tasks, latents, work)

    def drain(self) -> None:
        """Commit the batch in flight; latents that may still win are finished and judged here, on the device."""
        if self.in_flight is None:
            return
        pending, tasks, latents, work = self.in_flight
        self.in_flight = None
        for item, task, latent, future in zip(pending, tasks, latents, work):
            if future is None:
                task.quality_hint = self.guard.quality_hint
                outcome = run_task(task)
            else:
                outcome = future.result()
            choice = settle(self.codec, task, outcome, latent)
            self.guard.learn(choice)
            self._commit(*item, choice)

    def _commit(self, path, rel, info, data, image, choice) -> None:
        metadata = metadata_chunks(image.icc, image.exif)
        size = png_size(image.width, image.height, image.channels, len(metadata))
        shape = {"width": image.width, "height": image.height, "channels": image.channels}
        store, report = self.store, self.report
        inode = _node(store, rel, info)
        inode = store.set_content(inode.ino, data, size, shape, metadata, queue=True, mtime_ns=info.st_mtime_ns)
        store.finish_encode(inode.ino, inode.generation, choice.kind, choice.data, self.keep_originals,
                            choice.record)
        report.bytes_stored += store.get(inode.ino).stored_size
        report.kinds[choice.kind] += 1
        report.files += 1
        report.images += 1
        report.bytes_in += len(data)
        if self.progress:
            self.progress(1)


def _fail(report: ImportReport, path: Path, exc: BaseException) -> None:
    message = f"{path}: {exc}"
    report.failures.append(message)
    log.error("%s", message)
