"""``sdfs fsck``: check a store's consistency, and optionally repair it.

Checks that every blob parses and checksums, every directory entry points at an inode,
link counts and sizes agree with the tree, no inode or blob is orphaned, and the encode
queue refers to files that are waiting for it.
"""

from __future__ import annotations

import io
import struct
from collections import Counter
from dataclasses import dataclass, field

from PIL import Image

from .codec.container import Blob, ContainerError
from .png import png_size
from .store import AVIF, LATENT, METADATA, ORIGINAL, ROOT_INO, Inode, Store, ino_key


@dataclass
class Report:
    checked_inodes: int = 0
    checked_blobs: int = 0
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems


def check(store: Store, repair: bool = False, passes: int = 3) -> Report:
    """Check the store; with ``repair``, fix what was found and check again (a fix can uncover more)."""
    report = _check_once(store, repair)
    for _ in range(passes - 1):
        if not (repair and report.repaired):
            break
        again = _check_once(store, repair)
        if not again.problems:
            break
        report.problems += again.problems
        report.repaired += again.repaired
    return report


def _check_once(store: Store, repair: bool) -> Report:
    report = Report()
    fixes = []
    with store.read() as txn:
        inodes = {}
        for key, value in txn.cursor(db=store.db("inodes")):
            try:
                inode = Inode.from_bytes(value)
            except (ValueError, TypeError) as exc:
                report.problems.append(f"inode {struct.unpack('>Q', key)[0]}: unreadable record ({exc})")
                continue
            inodes[inode.ino] = inode
        report.checked_inodes = len(inodes)
        links, subdirs = Counter(), Counter()
        for key, value in txn.cursor(db=store.db("dirents")):
            parent, child = struct.unpack(">Q", key[:8])[0], struct.unpack(">Q", value)[0]
            name = key[8:].decode("utf-8", "surrogateescape")
            if child not in inodes:
                report.problems.append(f"entry {name!r} in directory {parent} points at missing inode {child}")
                fixes.append(("delete", "dirents", key))
                continue
            if parent not in inodes or not inodes[parent].is_dir:
                report.problems.append(f"entry {name!r} lives in {parent}, which is not a directory")
                fixes.append(("delete", "dirents", key))
                continue
            links[child] += 1
            if inodes[child].is_dir:
                subdirs[parent] += 1
        blobs = {bytes(k) for k, _ in txn.cursor(db=store.db("blobs"))}
        queue = {struct.unpack(">Q", k)[0]: struct.unpack(">Q", v)[0] for k, v in txn.cursor(db=store.db("queue"))}
        for inode in inodes.values():
            _check_inode(store, txn, inode, links, subdirs, blobs, queue, report, fixes)
        for key in sorted(blobs):
            if struct.unpack(">Q", key[:8])[0] not in inodes:
                report.problems.append(f"blob {key[8:].decode(errors='replace')} of missing inode "
                                       f"{struct.unpack('>Q', key[:8])[0]}")
                fixes.append(("delete", "blobs", key))
        for ino, generation in queue.items():
            inode = inodes.get(ino)
            if inode is None or inode.content != "image" or inode.generation != generation:
                report.problems.append(f"queue entry for inode {ino} does not match a file waiting to be encoded")
                fixes.append(("delete", "queue", ino_key(ino)))
    if repair and fixes:
        _apply(store, fixes, report)
    return report


def _check_inode(store, txn, inode, links, subdirs, blobs, queue, report, fixes) -> None:
    label = f"inode {inode.ino} ({inode.name or '/'})"
    expected_links = (2 + subdirs[inode.ino]) if inode.is_dir else links[inode.ino]
    if inode.ino != ROOT_INO and links[inode.ino] == 0:
        report.problems.append(f"{label}: no directory entry points at it (orphan)")
        fixes.append(("purge", inode.ino) if inode.nlink <= 0 or inode.is_dir else ("adopt", inode.ino))
        return
    if inode.nlink != expected_links:
        report.problems.append(f"{label}: link count {inode.nlink}, the tree says {expected_links}")
        fixes.append(("set", inode.ino, "nlink", expected_links))
    if inode.kind != "file":
        return
    key = ino_key(inode.ino)
    if inode.content in ("raw", "image", "original"):
        data = txn.get(key + ORIGINAL, db=store.db("blobs"))
        report.checked_blobs += data is not None
        if data is None:
            report.problems.append(f"{label}: its content is missing")
            return
        if inode.content == "raw" and inode.size != len(data):
            report.problems.append(f"{label}: size {inode.size}, stored bytes {len(data)}")
            fixes.append(("set", inode.ino, "size", len(data)))
        if inode.content == "image" and inode.ino not in queue:
            report.problems.append(f"{label}: waiting to be encoded but not in the queue")
            fixes.append(("queue", inode.ino, inode.generation))
    elif inode.content == "latent":
        data = txn.get(key + LATENT, db=store.db("blobs"))
        report.checked_blobs += data is not None
        if data is None:
            report.problems.append(f"{label}: latent blob missing")
            return
        try:
            blob = Blob.from_bytes(data)
        except ContainerError as exc:
            report.problems.append(f"{label}: latent blob corrupt: {exc}")
            return
        metadata = txn.get(key + METADATA, db=store.db("blobs")) or b""
        channels = (1 if blob.mode == "L" else 3) + (blob.alpha is not None)
        expected = png_size(blob.width, blob.height, channels, len(metadata))
        if inode.size != expected:
            report.problems.append(f"{label}: size {inode.size}, its PNG view is {expected} bytes")
            fixes.append(("set", inode.ino, "size", expected))
    elif inode.content == "avif":
        _check_avif(txn.get(key + AVIF, db=store.db("blobs")), inode, label, report)
    else:
        report.problems.append(f"{label}: unknown content kind {inode.content!r}")


def _check_avif(data: bytes | None, inode: Inode, label: str, report: Report) -> None:
    report.checked_blobs += data is not None
    if data is None:
        report.problems.append(f"{label}: AVIF blob missing")
        return
    try:
        with Image.open(io.BytesIO(data)) as im:
            found = (im.format, im.size)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the finding
        report.problems.append(f"{label}: AVIF blob corrupt: {exc}")
        return
    expected = ("AVIF", (inode.image["width"], inode.image["height"]))
    if found != expected:
        report.problems.append(f"{label}: AVIF blob is {found[0]} {found[1][0]}x{found[1][1]}, "
                               f"expected AVIF {expected[1][0]}x{expected[1][1]}")


def _apply(store: Store, fixes: list, report: Report) -> None:
    for fix in fixes:
        kind = fix[0]
        if kind == "adopt":
            name = store.adopt(fix[1])
            report.repaired.append(f"orphan inode {fix[1]} linked as {name}")
        elif kind == "purge":
            store.update(fix[1], nlink=0)
            store.purge(fix[1])
            report.repaired.append(f"removed orphan inode {fix[1]}")
        elif kind == "set":
            store.update(fix[1], **{fix[2]: fix[3]})
            report.repaired.append(f"inode {fix[1]}: {fix[2]} set to {fix[3]}")
        elif kind == "queue":
            store.requeue(fix[1], fix[2])
            report.repaired.append(f"inode {fix[1]}: queued for encoding")
        elif kind == "delete":
            store.delete_key(fix[1], fix[2])
            report.repaired.append(f"deleted stray {fix[1]} record")
