"""``sdfs bench``: sdfs against JPEG, WebP, AVIF and JPEG XL at equal bytes, image by image.

For every image and every sdfs setting, each conventional codec gets the same byte budget
(the largest quality whose file is no bigger than the sdfs blob). Quality is measured with
PSNR (RGB), MS-SSIM and SSIMULACRA2; the Bjøntegaard delta rate (BD-rate) of sdfs against each
codec summarises the curves (negative: sdfs needs fewer bytes for the same quality).
``PartialRows`` keeps each row on disk as soon as it is measured, so a run cut short (a timeout
on a borrowed GPU) still leaves its measurements.
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from .codec import Codec, CodecConfig, ImageData, read_image
from .metrics import METRICS as METRICS_BY_NAME

CONVENTIONAL = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF", "jxl": "JXL"}
METRICS = ("psnr", "msssim", "ssimulacra2")
BPP_RANGE = (0.05, 0.5)


@dataclass
class Row:
    image: str
    codec: str  # "sdfs b5", "jpeg", ...
    point: str  # the sdfs setting this budget came from
    bytes: int
    bpp: float
    psnr: float
    msssim: float
    ssimulacra2: float


def measure(original: np.ndarray, decoded: np.ndarray, metrics: Iterable[str]) -> dict[str, float]:
    return {name: (METRICS_BY_NAME[name](original, decoded) if name in metrics else float("nan")) for name in METRICS}


class BenchError(RuntimeError):
    pass


def encode_conventional(pixels: np.ndarray, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": quality}
    if fmt == "avif":
        options["speed"] = 6
    elif fmt == "jxl":
        _register_jxl()
        options.update(effort=7, num_threads=1)  # libjxl's default effort; --jobs runs images in parallel
    Image.fromarray(pixels).save(buffer, CONVENTIONAL[fmt], **options)
    return buffer.getvalue()


def _register_jxl() -> None:
    """Pillow reads and writes JPEG XL through the pillow-jxl-plugin package (in the [bench] extra)."""
    try:
        import pillow_jxl  # noqa: F401  (registers the JXL format with Pillow)
    except ImportError:
        raise BenchError("the jxl codec needs pillow-jxl-plugin: pip install 'sdfs[bench]'") from None


def check_codecs(names: Iterable[str]) -> None:
    """Fail before the long sdfs encodes on a codec name the bench does not know or cannot run."""
    for name in names:
        if name not in CONVENTIONAL:
            raise BenchError(f"unknown codec {name!r}: choose from {', '.join(CONVENTIONAL)}")
        if name == "jxl":
            _register_jxl()


def match_budget(pixels: np.ndarray, fmt: str, budget: int) -> tuple[bytes, int] | None:
    """The highest quality (1..100) whose file fits in ``budget`` bytes, by bisection; None if none fits."""
    low, high, best = 1, 100, None
    while low <= high:
        quality = (low + high) // 2
        data = encode_conventional(pixels, fmt, quality)
        if len(data) <= budget:
            best, low = (data, quality), quality + 1
        else:
            high = quality - 1
    return best


def measure_at_budget(pixels: np.ndarray, fmt: str, budget: int, metrics: Iterable[str]) -> dict[str, float]:
    """Scores of ``fmt`` at the highest quality that fits ``budget`` bytes; NaN where none fits."""
    matched = match_budget(pixels, fmt, budget)
    if matched is None:
        return dict.fromkeys(METRICS, float("nan"))
    return measure(pixels, np.asarray(Image.open(io.BytesIO(matched[0])).convert("RGB")), metrics)


def centre_crop(pixels: np.ndarray, side: int) -> np.ndarray:
    """The centred ``side`` x ``side`` crop of (H, W, C) pixels; all of them for side 0 (for experiments)."""
    if not side:
        return pixels
    top, left = (pixels.shape[0] - side) // 2, (pixels.shape[1] - side) // 2
    return np.ascontiguousarray(pixels[top:top + side, left:left + side])


def _conventional_rows(args) -> list[Row]:
    name, pixels, budgets, codecs, metrics = args
    rows = []
    pixels_count = pixels.shape[0] * pixels.shape[1]
    for point, budget in budgets:
        for fmt in codecs:
            matched = match_budget(pixels, fmt, budget)
            if matched is None:
                continue
            data, _ = matched
            decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            rows.append(Row(name, fmt, point, len(data), len(data) * 8 / pixels_count,
                            **measure(pixels, decoded, metrics)))
    return rows


def run(files: list[Path], codecs_by_point: dict[str, Codec], conventional: Iterable[str] = tuple(CONVENTIONAL),
        metrics: Iterable[str] = METRICS, jobs: int = 1, progress: Callable[[int], None] | None = None,
        on_rows: Callable[[list[Row]], None] | None = None) -> list[Row]:
    """Encode every image with each sdfs setting, then match each conventional codec to those sizes.

    ``progress`` is called with 1 per image and per image's conventional codecs; ``on_rows`` with
    each batch of rows as soon as it is measured.
    """
    check_codecs(conventional)
    rows: list[Row] = []

    def add(new: list[Row]) -> None:
        rows.extend(new)
        if on_rows:
            on_rows(new)
        if progress:
            progress(1)

    jobs_args = []
    metrics, conventional = tuple(metrics), tuple(conventional)
    for path in files:
        image = read_image(path)
        pixels = image.rgb()
        flat = ImageData(pixels)
        budgets, measured = [], []
        for point, codec in codecs_by_point.items():
            blob = codec.encode(flat)
            decoded = codec.decode(blob).rgb()
            measured.append(Row(path.name, f"sdfs {point}", point, len(blob), len(blob) * 8 / pixels[..., 0].size,
                                **measure(pixels, decoded, metrics)))
            budgets.append((point, len(blob)))
        add(measured)
        jobs_args.append((path.name, pixels, budgets, conventional, metrics))
    if jobs > 1:
        # spawn, not fork: a forked child of a process running torch's thread pool can hang
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for result in pool.map(_conventional_rows, jobs_args):
                add(result)
    else:
        for args in jobs_args:
            add(_conventional_rows(args))
    return rows


class PartialRows:
    """Appends rows to a CSV as they are measured, so an interrupted bench keeps what it did."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=[f.name for f in fields(Row)])
        self._writer.writeheader()

    def __call__(self, rows: list[Row]) -> None:
        self._writer.writerows(asdict(r) for r in rows)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_rows(path: Path) -> list[Row]:
    """The rows of a results CSV (``write_outputs``'s or ``PartialRows``'s)."""
    with open(path, newline="") as f:
        return [Row(r["image"], r["codec"], r["point"], int(r["bytes"]),
                    *(float(r[k]) for k in ("bpp", *METRICS))) for r in csv.DictReader(f)]


def curves(rows: list[Row]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """codec -> metric -> [(mean bpp, mean quality)] per rate point, over images every codec covered."""
    points = sorted({r.point for r in rows})
    codecs = sorted({r.codec if not r.codec.startswith("sdfs") else "sdfs" for r in rows})
    by_key = {(r.image, "sdfs" if r.codec.startswith("sdfs") else r.codec, r.point): r for r in rows}
    images = sorted({r.image for r in rows})
    out: dict = {c: {m: [] for m in METRICS} for c in codecs}
    for codec in codecs:
        for point in points:
            covered = [by_key[(i, codec, point)] for i in images if (i, codec, point) in by_key]
            if len(covered) < len(images):
                continue  # a budget too small for this codec on some image: leave the point out
            for metric in METRICS:
                values = [getattr(r, metric) for r in covered]
                if any(math.isnan(v) for v in values):
                    continue
                out[codec][metric].append((float(np.mean([r.bpp for r in covered])), float(np.mean(values))))
    for codec, by_metric in out.items():
        for metric, pts in by_metric.items():
            by_metric[metric] = upper_hull(pts) if codec == "sdfs" else sorted(pts)
    return out


def upper_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (bpp, quality) points worth choosing, by rate: their upper concave hull.

    A point another beats on both bytes and quality is left out, and so is one under the chord
    between two others: coding part of a library at each of those two settings gives any mean bpp
    and mean quality on the chord (means are linear), so the curve through it would understate
    what the settings reach."""
    hull: list[tuple[float, float]] = []
    for bpp, quality in sorted(points):
        if hull and quality <= hull[-1][1]:
            continue  # beaten on both by the last point kept
        while len(hull) >= 2 and _under_chord(hull[-2], hull[-1], (bpp, quality)):
            hull.pop()
        hull.append((bpp, quality))
    return hull


def _under_chord(left: tuple[float, float], middle: tuple[float, float], right: tuple[float, float]) -> bool:
    """Whether ``middle`` lies below the line from ``left`` to ``right`` (points on it, up to rounding, are kept)."""
    above = (middle[1] - left[1]) * (right[0] - left[0])
    chord = (right[1] - left[1]) * (middle[0] - left[0])
    return above < chord - 1e-9 * max(abs(above), abs(chord))


def bd_rate(reference: list[tuple[float, float]], test: list[tuple[float, float]],
            bpp_range: tuple[float, float] = BPP_RANGE) -> float:
    """Bjøntegaard delta rate in percent of ``test`` against ``reference`` (piecewise-cubic in log rate)."""
    from scipy.interpolate import PchipInterpolator

    ref = sorted(p for p in reference if bpp_range[0] <= p[0] <= bpp_range[1])
    tst = sorted(p for p in test if bpp_range[0] <= p[0] <= bpp_range[1])
    if len(ref) < 2 or len(tst) < 2:
        return float("nan")

    def log_rate_of_quality(points):
        by_quality = sorted(points, key=lambda p: p[1])
        q = np.array([p[1] for p in by_quality])
        r = np.log(np.array([p[0] for p in by_quality]))
        keep = np.concatenate([[True], np.diff(q) > 1e-9])
        return q[keep], r[keep]

    q1, r1 = log_rate_of_quality(ref)
    q2, r2 = log_rate_of_quality(tst)
    low, high = max(q1.min(), q2.min()), min(q1.max(), q2.max())
    if high <= low or len(q1) < 2 or len(q2) < 2:
        return float("nan")
    grid = np.linspace(low, high, 100)
    diff = np.mean(PchipInterpolator(q2, r2)(grid) - PchipInterpolator(q1, r1)(grid))
    return float((math.exp(diff) - 1) * 100)


def point_table(rows: list[Row]) -> list[str]:
    """Per codec and sdfs rate point: images the budget fitted, mean bpp and mean of each metric."""
    images = len({r.image for r in rows})
    lines = [f"{'codec':10s} {'point':5s} {'images':>6s} {'bpp':>6s} {'PSNR':>6s} {'MS-SSIM':>8s} {'SSIM2':>6s}"]
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.codec, r.point), []).append(r)
    sdfs_bpp = {point: np.mean([r.bpp for r in group]) for (codec, point), group in groups.items()
                if codec.startswith("sdfs")}  # points in order of size: 4L before 10L
    order = sorted(groups, key=lambda key: (sdfs_bpp.get(key[1], 0), key[1], key[0]))
    for (codec, point), group in ((key, groups[key]) for key in order):
        mean = {k: _mean_of_measured([getattr(r, k) for r in group]) for k in ("bpp", *METRICS)}
        lines.append(f"{codec:10s} {point:5s} {len(group):3d}/{images:<2d} {mean['bpp']:6.3f} {mean['psnr']:6.2f} "
                     f"{mean['msssim']:8.4f} {mean['ssimulacra2']:6.1f}")
    return lines


def _mean_of_measured(values: list[float]) -> float:
    """The mean of the values that were measured (a metric left out with --metrics is NaN)."""
    measured = [v for v in values if not math.isnan(v)]
    return float(np.mean(measured)) if measured else float("nan")


def summary_table(rows: list[Row]) -> str:
    data = curves(rows)
    lines = ["equal-byte comparison (a codec is listed at a point for the images whose budget it could meet):"]
    lines += ["  " + line for line in point_table(rows)]
    lines.append("rate-distortion curves, over the points every image reached (PSNR):")
    for codec, by_metric in data.items():
        pts = by_metric["psnr"]
        lines.append(f"  {codec:6s} " + ("  ".join(f"{b:.3f} bpp {q:5.2f} dB" for b, q in pts) or "-"))
    lines.append(f"BD-rate of sdfs against each codec over {BPP_RANGE[0]}-{BPP_RANGE[1]} bpp (negative = sdfs smaller):")
    for codec in data:
        if codec == "sdfs":
            continue
        cells = []
        for metric in METRICS:
            value = bd_rate(data[codec][metric], data["sdfs"][metric])
            cells.append(f"{metric} {f'{value:+.1f}%' if not math.isnan(value) else _why_undefined(data, codec, metric)}")
        lines.append(f"  vs {codec:5s} " + "  ".join(cells))
    partial = where_fitted(rows)
    if partial:
        lines.append("BD-rate over the images and points where the codec met every budget (the lowest points dropped "
                     "until at least half the images fit all the rest):")
    for codec, (images, points, values) in partial.items():
        subset = _curves_where(rows, codec, images, points)
        cells = [f"{metric} {f'{v:+.1f}%' if not math.isnan(v) else _why_undefined(subset, codec, metric)}"
                 for metric, v in values.items()]
        lines.append(f"  vs {codec:5s} {len(images)}/{len({r.image for r in rows})} images, {','.join(points)}: "
                     + "  ".join(cells))
    return "\n".join(lines)


def where_fitted(rows: list[Row]) -> dict[str, tuple[list[str], list[str], dict[str, float]]]:
    """For each codec that met too few budgets on every image for a BD-rate: the images and sdfs points
    where it met every one, and the BD-rate of sdfs against it there.

    A codec that cannot get down to sdfs's smallest budgets (WebP and JPEG XL at quality 1) has too
    few complete points for a BD-rate over all images; dropping the lowest points one at a time,
    the first set of two or more points that at least half the images fitted throughout is used.
    """
    images = sorted({r.image for r in rows})
    rates: dict[str, list[float]] = {}
    for r in rows:
        if r.codec.startswith("sdfs"):
            rates.setdefault(r.point, []).append(r.bpp)
    order = sorted(rates, key=lambda point: float(np.mean(rates[point])))
    complete = curves(rows)
    out = {}
    for codec in sorted({r.codec for r in rows if not r.codec.startswith("sdfs")}):
        if all(len(complete[codec][m]) >= 2 for m in METRICS):
            continue  # enough points on every image: the BD-rate over all images says it
        fitted = {(r.image, r.point) for r in rows if r.codec == codec}
        for start in range(len(order) - 1):
            points = order[start:]
            kept = [i for i in images if all((i, p) in fitted for p in points)]
            if 2 * len(kept) >= len(images):
                data = _curves_where(rows, codec, kept, points)
                out[codec] = (kept, points, {m: bd_rate(data[codec][m], data["sdfs"][m]) for m in METRICS})
                break
    return out


def _curves_where(rows: list[Row], codec: str, images: list[str], points: list[str]) -> dict:
    """``curves`` of sdfs and ``codec`` alone, over the given images and rate points."""
    return curves([r for r in rows if r.image in images and r.point in points
                   and (r.codec == codec or r.codec.startswith("sdfs"))])


def _why_undefined(data: dict, codec: str, metric: str) -> str:
    ours, theirs = ([p for p in data[name][metric] if BPP_RANGE[0] <= p[0] <= BPP_RANGE[1]]
                    for name in ("sdfs", codec))
    if len(ours) < 2 or len(theirs) < 2:
        return "n/a (too few rate points in range)"
    if min(q for _, q in theirs) > max(q for _, q in ours):
        return f"n/a ({codec} is better at every rate: no common quality range)"
    if max(q for _, q in theirs) < min(q for _, q in ours):
        return "n/a (sdfs is better at every rate: no common quality range)"
    return "n/a"


def write_outputs(rows: list[Row], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.csv", out / "results.json"]
    with open(written[0], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    data = curves(rows)
    bd = {codec: {m: bd_rate(data[codec][m], data["sdfs"][m]) for m in METRICS} for codec in data if codec != "sdfs"}
    partial = {codec: {"images": images, "points": points, "bd_rate": values}
               for codec, (images, points, values) in where_fitted(rows).items()}
    written[1].write_text(json.dumps({"rows": [asdict(r) for r in rows], "curves": data, "bd_rate": bd,
                                      "where_fitted": partial}, indent=1))
    written += _plots(data, out)
    return written


def _plots(data: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for metric in METRICS:
        fig, ax = plt.subplots(figsize=(6, 4))
        for codec, by_metric in data.items():
            pts = by_metric[metric]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=codec)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
        path = out / f"rd_{metric}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


# the rate points `sdfs bench` codes at by default, per latent family: about 0.08-0.32 bpp on Kodak
DEFAULT_POINTS = {"sd1": "3,4,5,6", "sdxl": "3,4,5,6", "sd3": "3L,4L,6L,8L", "flux": "3L,4L,6L,8L"}


def codecs_for(model, points: list[str], effort: int) -> dict[str, Codec]:
    """sdfs rate points from specs: "5" is 5 bits, "6L" 6 levels; "4@0.75" is 4 bits of the photo shrunk to 3/4 size."""
    codecs = {}
    for spec in points:
        depth, _, scale = spec.strip().partition("@")
        if depth.upper().endswith("L"):
            name, config = f"l{int(depth[:-1])}", {"levels": int(depth[:-1])}
        else:
            name, config = f"b{int(depth)}", {"bits": int(depth)}
        name += (f"s{scale}" if scale else "") + (f"e{effort}" if effort else "")
        codecs[name] = Codec(model, CodecConfig(**config, scale=float(scale or 1), effort=effort))
    return codecs
