"""The quality guard: per image, store the smallest of {latent, AVIF, original file} that meets the floor.

Latents fail on faces, small text and graphics, and at equal bytes AVIF usually looks better
(docs/BENCHMARKS.md). AVIF is searched for the lowest quality that still meets the floor; the
original file always meets it. The latent is judged by the store's metric on the picture a read
of it gives, but only where it could be the smallest: a coded latent's size before its restoration
filter bounds its blob's from below, and where AVIF or the original is smaller than that, the
filter's fit (a decode) and the judging are skipped. Whatever is chosen is never larger than the
original file.
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

from .codec import Codec, CodedLatent, ImageData
from .metrics import METRICS, scorer

log = logging.getLogger(__name__)

LATENT, AVIF, ORIGINAL = "latent", "avif", "original"
AVIF_SPEED = 6  # the search's probes
# the quality found is re-encoded slower, one or two steps lower where that still meets the floor:
# 4.2 % fewer bytes at the default floor on Kodak for ~1 s more per probe per 0.4 MP (docs/BENCHMARKS.md)
AVIF_FINAL_SPEED = 5
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


@dataclass
class Undecided:
    """The guard's choice short of the latent, which may still beat it: ``fallback`` is the smallest other
    candidate that meets the floor (and the record so far); ``QualityGuard.with_latent`` decides."""

    fallback: Choice

    @property
    def size(self) -> int:
        record = self.fallback.record
        return record[ORIGINAL]["bytes"] if self.fallback.data is None else len(self.fallback.data)


class QualityGuard:
    def __init__(self, floor: QualityFloor | None, quality_hint: int = 50) -> None:
        self.floor = floor
        self.quality_hint = quality_hint

    def choose(self, image: ImageData, original: bytes, latent: bytes | None, decoded: ImageData | None) -> Choice:
        """The smallest stored form of ``image`` that meets the floor, given its finished latent (None if
        encoding failed) and the picture a read of that latent gives."""
        outcome = self.without_latent(image, original, None if latent is None else len(latent))
        return self.with_latent(outcome, image, latent, decoded) if isinstance(outcome, Undecided) else outcome

    def without_latent(self, image: ImageData, original: bytes, latent_min: int | None) -> Choice | Undecided:
        """The choice among AVIF and the original, or ``Undecided`` where a latent of at least ``latent_min`` bytes
        (None: no latent) could still be smaller than the best of them."""
        record: dict = {ORIGINAL: {"bytes": len(original)}}
        candidates: list[tuple[int, str, bytes | None]] = [(len(original), ORIGINAL, None)]
        if self.floor is not None:
            record["floor"] = str(self.floor)
            judge = self.floor.scorer(scoring_view(image.rgb()))
            avif = self._smallest_avif(image, judge, len(original)) if image.alpha is None else None
            if avif is not None:
                data, quality, score, speed = self._slower(image, judge, *avif)
                record[AVIF] = {"bytes": len(data), "score": round(score, 2), "quality": quality, "speed": speed}
                candidates.append((len(data), AVIF, data))
        size, kind, data = min(candidates, key=lambda c: c[0])
        fallback = Choice(kind, data, record)
        if latent_min is not None and latent_min < size:
            return Undecided(fallback)
        if latent_min is not None and self.floor is not None:
            record[LATENT] = {"at_least": latent_min}  # never judged: it could not be the smallest
        return fallback

    def with_latent(self, undecided: Undecided, image: ImageData, latent: bytes, decoded: ImageData) -> Choice:
        """The latent if it meets the floor (judged on ``decoded``) in fewer bytes than the fallback, else the fallback."""
        fallback = undecided.fallback
        entry = fallback.record[LATENT] = {"bytes": len(latent)}
        if self.floor is not None:
            entry["score"] = round(self.floor.scorer(scoring_view(image.rgb()))(scoring_view(decoded.rgb())), 2)
            if not self.floor.met_by(entry["score"]):
                return fallback
        return Choice(LATENT, latent, fallback.record) if len(latent) < undecided.size else fallback

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
    """One image's guard work once its latent is coded on the device: pure CPU, picklable, so that a bulk
    import can run many in worker processes. ``latent_min`` bounds the latent's blob from below (None: no latent)."""

    name: str
    image: ImageData
    original: bytes
    latent_min: int | None
    error: str
    floor: QualityFloor | None
    quality_hint: int


def prepare(codec: Codec, guard: QualityGuard, jobs: Sequence[tuple[str, ImageData, bytes]],
            device: Callable[[], AbstractContextManager] = nullcontext
            ) -> tuple[list[GuardTask], list[CodedLatent | None]]:
    """The device part for (name, image, original file bytes) jobs: latents encoded and coded as one batch, short of
    their restoration filters (``settle`` fits those where a latent may be stored)."""
    images = [image for _, image, _ in jobs]
    with device():
        try:
            coded: list[tuple[CodedLatent | None, str]] = [(latent, "") for latent in codec.code_batch(images)]
        except Exception:  # noqa: BLE001 - one by one, so that a bad file names itself
            coded = [_code_one(codec, image) for image in images]
    tasks = [GuardTask(name, image, original, None if latent is None else latent.min_bytes, error, guard.floor,
                       guard.quality_hint)
             for (name, image, original), (latent, error) in zip(jobs, coded)]
    return tasks, [latent for latent, _ in coded]


def run_task(task: GuardTask) -> Choice | Undecided:
    """The guard's choice for one prepared image short of the latent; a failure keeps the original and says why."""
    try:
        outcome = QualityGuard(task.floor, task.quality_hint).without_latent(task.image, task.original,
                                                                            task.latent_min)
    except Exception as exc:  # noqa: BLE001 - keep the original rather than lose the file
        return _failed(task.name, Choice(ORIGINAL, None, {ORIGINAL: {"bytes": len(task.original)}}),
                       task.error or str(exc))
    return _failed(task.name, outcome, task.error) if task.error else outcome  # no latent: a final Choice


def settle(codec: Codec, task: GuardTask, outcome: Choice | Undecided, latent: CodedLatent | None,
           device: Callable[[], AbstractContextManager] = nullcontext) -> Choice:
    """The final choice: where the latent may still win, its blob is finished (the restoration filter fitted,
    which decodes it on the device) and judged on the picture a read of it gives."""
    if not isinstance(outcome, Undecided):
        return outcome
    try:
        with device():
            [(blob, picture)] = codec.finish_batch([latent])
        return QualityGuard(task.floor).with_latent(outcome, task.image, blob, picture)
    except Exception as exc:  # noqa: BLE001 - a latent that will not decode is not stored
        return _failed(task.name, outcome.fallback, f"{type(exc).__name__}: {exc}")


def _failed(name: str, choice: Choice, error: str) -> Choice:
    choice.record["error"] = error
    log.error("%s: no latent stored (%s); keeping %s", name, error, choice.kind)
    return choice


def encode_images(codec: Codec, guard: QualityGuard, jobs: Sequence[tuple[str, ImageData, bytes]],
                  device: Callable[[], AbstractContextManager] = nullcontext,
                  stop: Callable[[], bool] = lambda: False) -> list[Choice]:
    """What to store for each (name, image, original file bytes), in this process. Once ``stop()``
    is true the rest are left out: the result is shorter than ``jobs``."""
    choices = []
    for task, latent in zip(*prepare(codec, guard, jobs, device)):
        if stop():
            break
        task.quality_hint = guard.quality_hint
        choices.append(settle(codec, task, run_task(task), latent, device))
        guard.learn(choices[-1])
    return choices


def _code_one(codec: Codec, image: ImageData) -> tuple[CodedLatent | None, str]:
    try:
        return codec.code_batch([image])[0], ""
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
    unjudged = record.get(LATENT, {}).get("at_least")
    if unjudged is not None:
        scores += f"; latent not judged: at least {unjudged} bytes"
    return f"{content} (smallest meeting floor {floor}{scores})"
