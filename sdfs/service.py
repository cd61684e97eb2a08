"""What a mounted store runs besides FUSE: ingest, the background encoder, decodes and their cache."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from .codec import Codec, ImageData, ImageError, read_image
from .guard import QualityGuard, decode_avif, encode_images
from .png import metadata_chunks, png_size, render_png
from .store import ORIGINAL, Inode, Store

log = logging.getLogger(__name__)

MIN_IMAGE_SIDE = 32  # smaller images (icons) are kept byte-exact: a latent would be larger and worse


class _Changed(Exception):
    """The file changed (or was encoded) between reading its inode and its content."""


class RenderCache:
    """LRU of rendered files, bounded in bytes. The newest entry is kept even if it alone is too big."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: bytes) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._items[key] = value
            self._size += len(value)
            while self._size > self.capacity and len(self._items) > 1:
                _, evicted = self._items.popitem(last=False)
                self._size -= len(evicted)

    def drop(self, ino: int) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == ino]:
                self._size -= len(self._items.pop(key))

    @property
    def size(self) -> int:
        return self._size


class DeviceLock:
    """One user of the model at a time; interactive decodes go before background encodes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._holder: int | None = None  # thread id
        self._interactive_waiting = 0

    @contextmanager
    def hold(self, interactive: bool):
        with self._cond:
            if interactive:
                self._interactive_waiting += 1
            while self._busy or (not interactive and self._interactive_waiting):
                self._cond.wait()
            if interactive:
                self._interactive_waiting -= 1
            self._busy, self._holder = True, threading.get_ident()
        try:
            yield
        finally:
            with self._cond:
                self._busy, self._holder = False, None
                self._cond.notify_all()

    def yield_to_interactive(self) -> None:
        """Called by the holder of a background hold between steps of long work (effort's
        refinement): lets waiting interactive decodes run, then takes the device back."""
        with self._cond:
            if not self._interactive_waiting or self._holder != threading.get_ident():
                return
            self._busy, self._holder = False, None
            self._cond.notify_all()
            while self._busy or self._interactive_waiting:
                self._cond.wait()
            self._busy, self._holder = True, threading.get_ident()


class _DecodeRequest:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.done = threading.Event()
        self.image: ImageData | None = None
        self.error: BaseException | None = None


class DecodeBatcher:
    """Interactive latent decodes: those that wait together run as one ``decode_batch`` call.

    No thread of its own: a reader that finds the device free takes every pending request
    (its own included, oldest first) and decodes them at once; the codec groups same-shaped
    latents into one decoder pass. A lone read is never held back waiting for company.
    """

    def __init__(self, codec: Codec, device: DeviceLock, max_batch: int = 8) -> None:
        self.codec = codec
        self.device = device
        self.max_batch = max_batch
        self.batches = 0
        self.decodes = 0
        self._pending: list[_DecodeRequest] = []
        self._lock = threading.Lock()
        self._running = threading.Lock()

    def decode(self, blob: bytes) -> ImageData:
        request = _DecodeRequest(blob)
        with self._lock:
            self._pending.append(request)
        while not request.done.is_set():
            with self._running:
                if request.done.is_set():
                    break
                with self._lock:
                    batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                self._run(batch)
        if request.error is not None:
            raise request.error
        return request.image

    def _run(self, batch: list[_DecodeRequest]) -> None:
        try:
            with self.device.hold(interactive=True):
                try:
                    for r, image in zip(batch, self.codec.decode_batch([r.blob for r in batch])):
                        r.image = image
                except Exception:  # noqa: BLE001 - one by one, so each reader gets its own file's error
                    for r in batch:
                        r.image, r.error = self._decode_one(r.blob)
            self.batches += 1
            self.decodes += len(batch)
        except BaseException as exc:
            for r in batch:
                r.error = r.error or exc
            raise
        finally:
            for r in batch:
                r.done.set()

    def _decode_one(self, blob: bytes) -> tuple[ImageData | None, BaseException | None]:
        try:
            return self.codec.decode(blob), None
        except Exception as exc:  # noqa: BLE001 - raised again in the reader's thread
            return None, exc


@dataclass
class ServiceStats:
    decodes: int = 0
    renders: int = 0
    encodes: int = 0
    encode_failures: int = 0
    errors: list[str] = field(default_factory=list)


class Service:
    """Ingest of closed files, the background encode queue, and rendering for reads."""

    def __init__(self, store: Store, codec: Codec, guard: QualityGuard, cache_size: int = 512 << 20,
                 keep_originals: bool = False, batch_size: int | None = None) -> None:
        self.store = store
        self.codec = codec
        self.guard = guard
        self.cache = RenderCache(cache_size)
        self.keep_originals = keep_originals
        # batches pay on a GPU; on a CPU they only make a stop wait longer for the batch in hand
        self.batch_size = batch_size or (4 if torch.device(codec.model.device).type != "cpu" else 1)
        self.device = DeviceLock()
        # the encoder holds the device for a whole batch; effort's refinement can take minutes on a
        # CPU, so it hands the device to waiting reads between its steps
        codec.between_steps = self.device.yield_to_interactive
        self.decoder = DecodeBatcher(codec, self.device)
        self.stats = ServiceStats()
        self._inflight: dict[tuple[int, int], threading.Event] = {}
        self._inflight_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._worker = threading.Thread(target=self._encode_loop, name="sdfs-encoder", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Finish the image in hand; what is still queued stays queued in the store."""
        self._stop.set()
        self._wake.set()
        if self._worker:
            self._worker.join()

    # --- ingest -----------------------------------------------------------------------------
    def ingest(self, inode: Inode, data: bytes, mtime_ns: int | None = None) -> Inode:
        """Decide image or byte-exact by content and commit the bytes (plus a queue entry) at once."""
        image = classify(data, self.codec.config.max_pixels, inode.name)
        self.cache.drop(inode.ino)
        if image is None:
            return self.store.set_content(inode.ino, data, len(data), None, mtime_ns=mtime_ns)
        info = {"width": image.width, "height": image.height, "channels": image.channels}
        metadata = metadata_chunks(image.icc, image.exif)
        size = png_size(image.width, image.height, image.channels, len(metadata))
        committed = self.store.set_content(inode.ino, data, size, info, metadata, queue=True, mtime_ns=mtime_ns)
        self._wake.set()
        return committed

    # --- reads ------------------------------------------------------------------------------
    def read(self, inode: Inode, size: int, offset: int) -> bytes:
        if inode.content == "raw":
            return self.store.read_range(inode.ino, ORIGINAL, offset, size)
        return self.view(inode)[offset:offset + size]

    def view(self, inode: Inode) -> bytes:
        """The rendered PNG of the inode's current version (retrying if it changes underneath)."""
        for _ in range(5):
            try:
                return self.render(inode)
            except _Changed:
                inode = self.store.get(inode.ino)
        return self.render(inode)

    def render(self, inode: Inode) -> bytes:
        """The PNG view of an image file; one decode per (file, version) however many readers ask."""
        key = (inode.ino, inode.generation, inode.content)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        with self._inflight_lock:
            event = self._inflight.get(key)
            leader = event is None
            if leader:
                event = self._inflight[key] = threading.Event()
        if not leader:
            event.wait()
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        try:
            data = self._render_now(inode)
            self.cache.put(key, data)
            return data
        finally:
            if leader:
                with self._inflight_lock:
                    self._inflight.pop(key, None)
                event.set()

    def _render_now(self, inode: Inode) -> bytes:
        current, content, metadata = self.store.content_for(inode)
        if (current.generation, current.content) != (inode.generation, inode.content):
            raise _Changed(inode.name)
        self.stats.renders += 1
        if current.content == "latent":
            image = self.decoder.decode(content)
            self.stats.decodes += 1
        elif current.content == "avif":
            image = decode_avif(content, grey=current.image["channels"] == 1)
            self.stats.decodes += 1
        else:
            image = read_image(content, max_pixels=self.codec.config.max_pixels, name=current.name)
        return render_png(image.pixels, image.alpha, metadata or b"")

    # --- background encoder -----------------------------------------------------------------
    def _encode_loop(self) -> None:
        while not self._stop.is_set():
            batch = self.store.queued(self.batch_size)
            if not batch:
                self._wake.wait(timeout=2.0)
                self._wake.clear()
                continue
            try:
                self.encode_batch(batch)
            except Exception:  # noqa: BLE001 - the daemon must keep serving; the error is logged
                log.exception("encoder batch failed")
                self._stop.wait(5.0)

    def encode_batch(self, batch: list[tuple[int, int]]) -> int:
        """Encode queued files and swap in what the guard chose; returns how many were swapped."""
        jobs: list[tuple[Inode, int, bytes, ImageData]] = []
        for ino, generation in batch:
            try:
                inode = self.store.get(ino)
                data = self.store.blob(ino, ORIGINAL)
                jobs.append((inode, generation, data, read_image(data, max_pixels=self.codec.config.max_pixels,
                                                                 name=inode.name)))
            except Exception as exc:  # noqa: BLE001 - reported per file, the queue moves on
                self._give_up(ino, generation, f"inode {ino}", exc)
        if not jobs:
            return 0
        choices = encode_images(self.codec, self.guard, [(i.name, image, data) for i, _, data, image in jobs],
                                device=lambda: self.device.hold(interactive=False), stop=self._stop.is_set)
        swapped = 0
        for (inode, generation, _, _), choice in zip(jobs, choices):
            if "error" in choice.record:
                self._count_failure(f"{inode.name}: no latent stored: {choice.record['error']}")
            if self.store.finish_encode(inode.ino, generation, choice.kind, choice.data, self.keep_originals,
                                        choice.record):
                self.cache.drop(inode.ino)
                swapped += 1
                self.stats.encodes += 1
        return swapped

    def _give_up(self, ino: int, generation: int, name: str, exc: BaseException) -> None:
        message = f"{name}: not encoded, original kept: {exc}"
        log.error("%s", message)
        self._count_failure(message)
        self.store.finish_encode(ino, generation, "original", None, True, {"error": str(exc)})

    def _count_failure(self, message: str) -> None:
        self.stats.encode_failures += 1
        self.stats.errors.append(message)


def classify(data: bytes, max_pixels: int, name: str = "") -> ImageData | None:
    """The decoded image if ``data`` is a still image worth encoding, else None (stored byte-exact)."""
    if not data:
        return None
    try:
        image = read_image(data, max_pixels=max_pixels, name=name)
    except ImageError as exc:
        log.debug("%s stored byte-exact: %s", name, exc)
        return None
    if min(image.width, image.height) < MIN_IMAGE_SIDE:
        return None
    return image

