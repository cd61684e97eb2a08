"""``sdfs stats``: what a store holds and how well it is compressed (like btrfs's compsize)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .store import Store
from .units import human_bytes


@dataclass
class StoreStats:
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    original_bytes: int = 0
    stored_bytes: int = 0
    visible_bytes: int = 0
    mix: Counter = field(default_factory=Counter)
    mix_bytes: Counter = field(default_factory=Counter)
    queued: int = 0
    store_file_bytes: int = 0

    @property
    def ratio(self) -> float:
        return self.original_bytes / self.stored_bytes if self.stored_bytes else 1.0


LABELS = {"latent": "latent", "avif": "AVIF (quality guard)", "original": "original image (quality guard)",
          "image": "image, not yet encoded", "raw": "byte-exact"}


def gather(store: Store) -> StoreStats:
    stats = StoreStats()
    for inode in store.inodes():
        if inode.kind == "dir":
            stats.directories += 1
        elif inode.kind == "symlink":
            stats.symlinks += 1
        else:
            stats.files += 1
            stats.original_bytes += inode.original_size
            stats.stored_bytes += inode.stored_size
            stats.visible_bytes += inode.size
            stats.mix[inode.content] += 1
            stats.mix_bytes[inode.content] += inode.stored_size
    stats.queued = store.queue_length()
    stats.store_file_bytes = store.disk_usage()
    return stats


def render(stats: StoreStats, settings: dict) -> str:
    lines = [
        f"store        {settings.get('family', '?')} latents, model {settings.get('model', '?')}, "
        f"codec {settings.get('codec', {})}, quality floor {settings.get('quality_floor', 'off')}",
        f"files        {stats.files} in {stats.directories} directories, {stats.symlinks} symlinks",
        f"original     {human_bytes(stats.original_bytes)}",
        f"stored       {human_bytes(stats.stored_bytes)}  (ratio x{stats.ratio:.1f}; LMDB file {human_bytes(stats.store_file_bytes)})",
        f"as shown     {human_bytes(stats.visible_bytes)}  (the PNG views' sizes)",
        f"queue        {stats.queued} files waiting for the encoder",
        "codec mix:",
    ]
    for content, count in stats.mix.most_common():
        lines.append(f"  {LABELS.get(content, content):24s} {count:8d} files  {human_bytes(stats.mix_bytes[content]):>10s}")
    return "\n".join(lines)
