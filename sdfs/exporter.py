"""``sdfs export``: write a store's tree out as ordinary files, without a mount.

Names are kept as written. Byte-exact files are copied as stored; images are decoded
and written in the chosen format (PNG by default, as the mount shows them).
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .codec import Codec, read_image
from .guard import decode_avif
from .store import AVIF, LATENT, ORIGINAL, Inode, Store

log = logging.getLogger(__name__)

FORMATS = {"png": ("PNG", {}), "jpeg": ("JPEG", {"quality": 92}), "webp": ("WEBP", {"quality": 90}),
           "avif": ("AVIF", {"quality": 80})}


@dataclass
class ExportReport:
    files: int = 0
    images: int = 0
    bytes_out: int = 0
    failures: list[str] = field(default_factory=list)


def export_tree(store: Store, dest: Path, codec: Codec, fmt: str = "png",
                progress: Callable[[int], None] | None = None) -> ExportReport:
    report = ExportReport()
    dest.mkdir(parents=True, exist_ok=True)
    _export_dir(store, "/", dest, codec, fmt, report, progress)
    return report


def _export_dir(store, path, target, codec, fmt, report, progress) -> None:
    for name, inode in store.listdir(path):
        child_path, child_target = f"{path.rstrip('/')}/{name}", target / name
        try:
            if inode.kind == "dir":
                child_target.mkdir(exist_ok=True)
                _export_dir(store, child_path, child_target, codec, fmt, report, progress)
            elif inode.kind == "symlink":
                if not child_target.is_symlink():
                    os.symlink(inode.target, child_target)
            else:
                report.bytes_out += _export_file(store, inode, child_target, codec, fmt)
                report.files += 1
                report.images += inode.content != "raw"
                if progress:
                    progress(1)
            _copy_attributes(inode, child_target)
        except Exception as exc:  # noqa: BLE001 - one line per failed file, then go on
            report.failures.append(f"{child_path}: {exc}")
            log.error("%s: %s", child_path, exc)


def _export_file(store: Store, inode: Inode, target: Path, codec: Codec, fmt: str) -> int:
    if inode.content == "raw":
        data = store.blob(inode.ino, ORIGINAL) or b""
    else:
        if inode.content == "latent":
            image = codec.decode(store.blob(inode.ino, LATENT))
        elif inode.content == "avif":
            image = decode_avif(store.blob(inode.ino, AVIF), grey=inode.image["channels"] == 1)
        else:
            image = read_image(store.blob(inode.ino, ORIGINAL), max_pixels=codec.config.max_pixels)
        buffer = io.BytesIO()
        format_name, options = FORMATS[fmt]
        image.save(buffer, format_name, **options)
        data = buffer.getvalue()
    target.write_bytes(data)
    return len(data)


def _copy_attributes(inode: Inode, target: Path) -> None:
    if inode.kind == "symlink":
        return
    os.chmod(target, inode.mode & 0o7777)
    os.utime(target, ns=(inode.atime_ns, inode.mtime_ns))
