"""The quality guard: per image, store the smallest of {latent, AVIF, original file} that meets the floor.

Latents fail on faces, small text and graphics, and at equal bytes AVIF usually looks better
(docs/BENCHMARKS.md). The guard measures the decoded latent against the original with the
store's metric; AVIF is searched for the lowest quality that still meets the floor; the original
file always meets it. Whatever is chosen is never larger than the original file.
"""

from __future__ import annotations

import io
import logging
import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .codec import Codec, ImageData
from .metrics import METRICS, scorer

log = logging.getLogger(__name__)

LATENT, AVIF, ORIGINAL = "latent", "avif", "original"
AVIF_SPEED = 6  # the search's probes
# the quality found is re-encoded slower, one or two steps lower where that still meets the floor:
# 4.2 % fewer bytes at the default floor on Kodak for ~1 s more per probe per 0.4 MP (docs/BENCHMARKS.md)
AVIF_FINAL_SPEED = 5
# the search looks for AVIF up to this much larger than the smallest other candidate: the slower re-encode
# of its find is up to 13 % smaller (4.2 % on average on Kodak, benchmarks/guard_avif_speed.py)
SLOWER_REENCODE_ALLOWANCE = 1.15
# full-resolution chroma: SSIMULACRA2 weighs colour detail, and at the default floor Kodak needs
# 1.7 % fewer bytes in 4:4:4 than in 4:2:0 (docs/BENCHMARKS.md)
AVIF_SUBSAMPLING = "4:4:4"
SCORE_MAX_PIXELS = 4_000_000  # larger images are judged at a box-filtered size of at most this
DEFAULT_FLOOR = "ssimulacra2:30"


class FloorError(ValueError):
    pass


@dataclass(frozen=True)
class QualityFloor:
    """A metric (psnr, msssim or ssimulacra2) and the lowest score an image may be stored at."""

    metric: str
    threshold: float

    @classmethod
    def parse(cls, text: str | None) -> QualityFloor | None:
        """``METRIC:THRESHOLD`` (e.g. ``ssimulacra2:30``, ``psnr:32``), or ``off`` for latents only."""
        if text is None or text.strip().lower() in ("", "off", "none"):
            return None
        metric, sep, value = text.partition(":")
        metric = metric.strip().lower()
        if not sep or metric not in METRICS:
            raise FloorError(f"quality floor {text!r}: expected METRIC:THRESHOLD with METRIC one of "
                             f"{', '.join(METRICS)}, or 'off'")
        try:
            return cls(metric, float(value))
        except ValueError:
            raise FloorError(f"quality floor {text!r}: {value!r} is not a number") from None

    def __str__(self) -> str:
        return f"{self.metric}:{self.threshold:g}"

    def scorer(self, original: np.ndarray) -> Callable[[np.ndarray], float]:
        """The metric against a fixed original, as a function of the decoded image."""
        return scorer(self.metric, original)

    def met_by(self, score: float) -> bool:
        return score >= self.threshold  # NaN (image too small for the metric) never meets it


@dataclass
class Choice:
    """What to store for one image: ``data`` is None when the original file is kept."""

    kind: str
    data: bytes | None
    record: dict = field(default_factory=dict)  # floor, each candidate's bytes and score; kept on the inode


class QualityGuard:
    def __init__(self, floor: QualityFloor | None, quality_hint: int = 50) -> None:
        self.floor = floor
        self.quality_hint = quality_hint

    def wants_decoded_latent(self, latent: bytes | None, original: bytes) -> bool:
        return self.floor is not None and latent is not None and len(latent) < len(original)

    def choose(self, image: ImageData, original: bytes, latent: bytes | None, decoded: ImageData | None) -> Choice:
        """The smallest stored form of ``image`` that meets the floor.

        ``latent`` is None if encoding failed; ``decoded`` is the latent decoded, wherever
        ``wants_decoded_latent`` says the guard needs it."""
        record: dict = {ORIGINAL: {"bytes": len(original)}}
        candidates: list[tuple[int, str, bytes | None]] = [(len(original), ORIGINAL, None)]
        if self.floor is None:
            if latent is not None and len(latent) < len(original):
                record[LATENT] = {"bytes": len(latent)}
                return Choice(LATENT, latent, record)
            return Choice(ORIGINAL, None, record)
        record["floor"] = str(self.floor)
        judge = self.floor.scorer(scoring_view(image.rgb()))
        if self.wants_decoded_latent(latent, original):
            score = judge(scoring_view(decoded.rgb()))
            record[LATENT] = {"bytes": len(latent), "score": round(score, 2)}
            if self.floor.met_by(score):
                candidates.append((len(latent), LATENT, latent))
        # the search probes at AVIF_SPEED; the slower re-encode of its find may still come in under a latent
        limit = min(len(original), math.ceil(min(candidates)[0] * SLOWER_REENCODE_ALLOWANCE))
        avif = self._smallest_avif(image, judge, limit) if image.alpha is None else None
        if avif is not None:
            data, quality, score, speed = self._slower(image, judge, *avif)
            record[AVIF] = {"bytes": len(data), "score": round(score, 2), "quality": quality, "speed": speed}
            candidates.append((len(data), AVIF, data))
        _, kind, data = min(candidates, key=lambda c: c[0])
        return Choice(kind, data, record)

    def learn(self, choice: Choice) -> None:
        """Start the next AVIF search where this image's ended."""
        if AVIF in choice.record:
            self.quality_hint = choice.record[AVIF]["quality"]

    def _smallest_avif(self, image: ImageData, judge: Callable[[np.ndarray], float], limit: int):
        """The lowest AVIF quality that meets the floor in fewer than ``limit`` bytes.

        Each probe costs an AVIF encode and a metric, so the search starts at the quality the
        previous image needed (photos of one library need similar ones), gallops outwards until
        the answer is bracketed, then bisects.
        """
        low, high, best = 0, 101, None  # ``low`` misses the floor; ``high`` meets it or is too big
        quality, step = self.quality_hint, 4
        while high - low > 1:
            quality = min(max(quality, low + 1), high - 1)
            data = encode_avif(image, quality)
            if len(data) >= limit:
                high = quality  # too big: a passing quality, if any, is lower
            else:
                score = _avif_score(judge, data)
                if self.floor.met_by(score):
                    best, high = (data, quality, score), quality
                else:
                    low = quality
            if low == 0 or high == 101:
                quality += -step if high == quality else step
                step *= 2
            else:
                quality = (low + high) // 2
        return best

    def _slower(self, image: ImageData, judge: Callable[[np.ndarray], float], data: bytes, quality: int,
                score: float) -> tuple[bytes, int, float, int]:
        """The smallest of the search's find and AVIF_FINAL_SPEED encodes near its quality that meet the floor.

        A slower encode of one quality is smaller at about the same score, so the lowest passing
        quality drops too: on Kodak by 1 or 2 as often as by none (benchmarks/guard_avif_speed.py).
        Two probes: quality - 1, then quality - 2 if that passed, else the quality itself.
        """
        best = (data, quality, score, AVIF_SPEED)

        def smaller_and_passing(candidate: int) -> bool:
            nonlocal best
            if candidate < 1:
                return False
            slow = encode_avif(image, candidate, AVIF_FINAL_SPEED)
            if len(slow) >= len(best[0]):
                return False
            slow_score = _avif_score(judge, slow)
            if not self.floor.met_by(slow_score):
                return False
            best = (slow, candidate, slow_score, AVIF_FINAL_SPEED)
            return True

        if smaller_and_passing(quality - 1):
            smaller_and_passing(quality - 2)
        else:
            smaller_and_passing(quality)
        return best


def _avif_score(judge: Callable[[np.ndarray], float], data: bytes) -> float:
    return judge(scoring_view(decode_avif(data).rgb()))


def scoring_view(pixels: np.ndarray) -> np.ndarray:
    """What the metric compares: the image itself up to SCORE_MAX_PIXELS, else an integer box-filter
    reduction of it. SSIMULACRA2 costs ~1.3 s per megapixel on 2 CPU cores, and the guard runs it
    on every probe."""
    height, width = pixels.shape[:2]
    factor = math.ceil(math.sqrt(height * width / SCORE_MAX_PIXELS))
    if factor <= 1:
        return pixels
    return np.asarray(Image.fromarray(pixels).reduce(factor))


@dataclass
class GuardTask:
    """One image's guard work once the device part (encode, decode of the latent) is done: pure CPU,
    picklable, so that a bulk import can run many in worker processes."""

    name: str
    image: ImageData
    original: bytes
    latent: bytes | None
    decoded: ImageData | None
    error: str
    floor: QualityFloor | None
    quality_hint: int


def prepare(codec: Codec, guard: QualityGuard, jobs: Sequence[tuple[str, ImageData, bytes]],
            device: Callable[[], AbstractContextManager] = nullcontext) -> list[GuardTask]:
    """The device part for (name, image, original file bytes) jobs: latents encoded as one batch,
    then those the guard must judge decoded as one batch."""
    images = [image for _, image, _ in jobs]
    with device():
        try:
            latents: list[tuple[bytes | None, str]] = [(blob, "") for blob in codec.encode_batch(images)]
        except Exception:  # noqa: BLE001 - one by one, so that a bad file names itself
            latents = [_encode_one(codec, image) for image in images]
    wanted = [i for i, ((_, _, original), (latent, _)) in enumerate(zip(jobs, latents))
              if guard.wants_decoded_latent(latent, original)]
    decoded: dict[int, ImageData | None] = {}
    if wanted:
        with device():
            try:
                decoded = dict(zip(wanted, codec.decode_batch([latents[i][0] for i in wanted])))
            except Exception:  # noqa: BLE001 - a latent that will not decode is not stored
                for i in wanted:
                    decoded[i], error = _decode_one(codec, latents[i][0])
                    if error:
                        latents[i] = (None, error)
    return [GuardTask(name, image, original, latent, decoded.get(i), error, guard.floor, guard.quality_hint)
            for i, ((name, image, original), (latent, error)) in enumerate(zip(jobs, latents))]


def run_task(task: GuardTask) -> Choice:
    """The guard's choice for one prepared image; a failure keeps the original file and says why."""
    error = task.error
    try:
        choice = QualityGuard(task.floor, task.quality_hint).choose(task.image, task.original, task.latent,
                                                                    task.decoded)
    except Exception as exc:  # noqa: BLE001 - keep the original rather than lose the file
        choice, error = Choice(ORIGINAL, None, {ORIGINAL: {"bytes": len(task.original)}}), error or str(exc)
    if error:
        choice.record["error"] = error
        log.error("%s: no latent stored (%s); keeping %s", task.name, error, choice.kind)
    return choice


def encode_images(codec: Codec, guard: QualityGuard, jobs: Sequence[tuple[str, ImageData, bytes]],
                  device: Callable[[], AbstractContextManager] = nullcontext,
                  stop: Callable[[], bool] = lambda: False) -> list[Choice]:
    """What to store for each (name, image, original file bytes), in this process. Once ``stop()``
    is true the rest are left out: the result is shorter than ``jobs``."""
    choices = []
    for task in prepare(codec, guard, jobs, device):
        if stop():
            break
        task.quality_hint = guard.quality_hint
        choices.append(run_task(task))
        guard.learn(choices[-1])
    return choices


def _encode_one(codec: Codec, image: ImageData) -> tuple[bytes | None, str]:
    try:
        return codec.encode(image), ""
    except Exception as exc:  # noqa: BLE001
        return None, f"{type(exc).__name__}: {exc}"


def _decode_one(codec: Codec, blob: bytes) -> tuple[ImageData | None, str]:
    try:
        return codec.decode(blob), ""
    except Exception as exc:  # noqa: BLE001
        return None, f"{type(exc).__name__}: {exc}"


def encode_avif(image: ImageData, quality: int, speed: int = AVIF_SPEED) -> bytes:
    buffer = io.BytesIO()
    chroma = {} if image.is_grey else {"subsampling": AVIF_SUBSAMPLING}  # grey stays 4:0:0
    Image.fromarray(image.pixels).save(buffer, "AVIF", quality=quality, speed=speed, **chroma)
    return buffer.getvalue()


def decode_avif(data: bytes, grey: bool | None = None) -> ImageData:
    """Pixels of a guard-written AVIF (no alpha, no metadata: those live beside it in the store)."""
    with Image.open(io.BytesIO(data)) as im:
        if im.format != "AVIF":
            raise ValueError(f"expected an AVIF stream, found {im.format}")
        if grey is None:
            grey = im.mode == "L"
        return ImageData(np.asarray(im.convert("L" if grey else "RGB")).copy())


def describe(content: str, record: dict | None) -> str:
    """One line for ``user.sdfs.codec``: what a file is stored as and why."""
    record = record or {}
    if content == "raw":
        return "original (byte-exact)"
    if content == "image":
        return "original (queued for encoding)"
    if "error" in record:
        return f"{content} (no latent: {record['error']})"
    floor = record.get("floor")
    if not floor:
        return content
    parts = [f"{kind} {entry['score']:g}" for kind, entry in record.items()
             if isinstance(entry, dict) and "score" in entry]
    scores = f"; scores {', '.join(parts)}" if parts else ""
    return f"{content} (smallest meeting floor {floor}{scores})"
