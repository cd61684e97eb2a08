"""Latent quantisers: latent (C, h, w) float -> integer symbol planes plus a small parameter table.

* ``uniform``: per-channel scalar quantisation at B bits (2^B levels, or any number of levels
  from 2 to 256) over the channel's range.
* ``rotated uniform``: the same on the family's principal components (a fixed rotation of the
  channels, ``rotations.py``), finer steps for the stronger ones; what ``uniform`` codes for sd3.
* ``rotated haar``: the principal components split into one level of Haar bands (``wavelet.py``),
  the detail bands on a coarser grid; what ``uniform`` codes for sd3 since 2026-12-04.
* ``palette``: the seed's method, N latent vectors chosen per image (k-means) with
  Floyd-Steinberg dithering on the latent grid; symbols are palette indices.

Parameters are kept as float16 so that the stored bytes and the decoder's view agree exactly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

from . import wavelet
from .rotations import NO_ROTATION, RotationError, rotation_matrix
from .varint import encode_varint, read_varint, unzigzag, zigzag

UNIFORM, PALETTE, ROTATED, HAAR, NESTED_HAAR, DEEP_HAAR = 1, 2, 3, 4, 5, 6
KIND_NAMES = {UNIFORM: "uniform", PALETTE: "palette", ROTATED: "rotated uniform", HAAR: "rotated haar",
              NESTED_HAAR: "rotated haar, 2 levels", DEEP_HAAR: "rotated haar, 3 levels"}
HAAR_KINDS = (HAAR, NESTED_HAAR, DEEP_HAAR)
NEST_DEPTH = {HAAR: 0, NESTED_HAAR: 1, DEEP_HAAR: 2}  # Haar levels nested in place in each LL band
MAX_UNIFORM_LEVELS = 256
MAX_ROTATED_SYMBOLS = 1024  # the strongest component spans many more steps than any channel
MAX_HAAR_SYMBOLS = 4096  # a component's LL band spans twice its values; the entropy coder's limit
STEP_EXPONENT = -1.0  # a component's step ~ its span ** this (0: one step for all; measured in BENCHMARKS.md)
# latents of fewer cells keep rounding cells: 64 band planes' side information outweighs the bands'
# gain on small images (BD-rate of the bands on Kodak, PSNR: whole photos, 6144 cells, -11 %; 512 px
# crops, 4096 cells, -10 %; 384 px, 2304 cells, -6.6 %; a loss on a 256 px crop, 1024 cells)
MIN_HAAR_CELLS = 2304
# the Haar detail bands' step over the averages' (benchmarks/latent_transform.py: 1-1.4 lead on Kodak, 1.2 is the best compromise)
DETAIL_GAIN = 1.2
# nested Haar levels pay at few levels, where LL's details round mostly to zero (the second alone,
# first 8 Kodak photos: 3 levels -12 % bytes, 4 -7 %, 6 -1.2 %, 7 level, 8 +0.3 %; the third against
# the second on all 24: 3 levels -4.8 %, 4 -2.4 %, 7 -0.9 %; the second and third against one level:
# 8 levels -0.45 %, 10 +0.2 %, 12 +0.35 %, at the same or lower latent error; decoded, 8 photos: 8
# levels -0.6 % bytes for the same picture, 10-16 +0.25-0.5 %; docs/BENCHMARKS.md)
NESTED_MAX_LEVELS = 8
# Since 2026-12-07 a rotated Haar quantiser's parameters are written compactly where they can be, flagged by this
# bit in the kind byte: varint counts, each component's LL step (its detail step is the LL step times one gain, sent
# once) and each centre as a zigzag varint. An sd3 blob's 104 bytes of parameters become about 55.
COMPACT = 0x80


class QuantError(ValueError):
    pass


@dataclass
class QuantizedLatent:
    """Integer symbols (planes, h, w) with alphabet ``levels`` and the table that maps them back.

    A rotated quantiser's table is per component, ``rotation`` names the rotation and
    ``nominal_levels`` the levels per channel its step was chosen for (what the user asked).
    A rotated Haar quantiser's symbols are the components' bands, band-major
    ((4 x C, ceil(h/2), ceil(w/2)), centred on ``levels // 2``); its table is per component
    [step of the LL band, step of the detail bands] and ``centres`` each LL band's centre in
    steps; ``latent_size`` is the (h, w) the bands invert to.
    """

    kind: int
    levels: int
    symbols: np.ndarray  # int32 (planes, h, w)
    table: np.ndarray  # float16: uniform (C, 2) = [low, high]; rotated the same per component; palette (N, C)
    rotation: int = NO_ROTATION
    nominal_levels: int = 0
    centres: np.ndarray | None = None  # int16 (C,): rotated Haar only
    latent_size: tuple[int, int] | None = None  # rotated Haar only

    @property
    def name(self) -> str:
        return KIND_NAMES[self.kind]

    @property
    def requested_levels(self) -> int:
        return self.nominal_levels or self.levels

    def dequantize(self) -> np.ndarray:
        """The latent (C, h, w) float32 this decodes to."""
        table = self.table.astype(np.float32)
        if self.kind == PALETTE:
            return np.ascontiguousarray(table[self.symbols[0]].transpose(2, 0, 1))
        if self.kind in HAAR_KINDS:
            return haar_latent(self.symbols.astype(np.float32), self, np)
        low, step = uniform_grid(table, self.levels)
        values = (low[:, None, None] + self.symbols.astype(np.float32) * step[:, None, None]).astype(np.float32)
        if self.kind == ROTATED:
            matrix = rotation_matrix(self.rotation, len(table))
            values = (matrix.T @ values.reshape(len(table), -1)).reshape(values.shape)
        return values

    def params_bytes(self) -> bytes:
        gain = self.detail_gain() if self.kind in HAAR_KINDS else None
        if gain is not None:
            return self._compact_params(gain)
        head = struct.pack("<BHH", self.kind, self.levels, self.table.shape[0])
        if self.kind in (ROTATED, *HAAR_KINDS):
            head += struct.pack("<BH", self.rotation, self.nominal_levels)
        tail = self.centres.astype("<i2").tobytes() if self.kind in HAAR_KINDS else b""
        return head + self.table.astype("<f2").tobytes() + tail

    def detail_gain(self) -> np.float16 | None:
        """The one gain that gives every detail step from its LL step (``detail_steps``), if there is one."""
        gain = np.float16(self.table[0, 1].astype(np.float32) / self.table[0, 0].astype(np.float32))
        return gain if np.array_equal(detail_steps(self.table[:, 0], gain), self.table[:, 1]) else None

    def _compact_params(self, gain: np.float16) -> bytes:
        out = bytearray([self.kind | COMPACT, self.rotation])
        for value in (self.levels, len(self.table), self.nominal_levels):
            out += encode_varint(value)
        out += self.table[:, 0].astype("<f2").tobytes() + np.float16(gain).astype("<f2").tobytes()
        for centre in self.centres.astype(np.int64):
            out += encode_varint(zigzag(int(centre)))
        return bytes(out)

    @staticmethod
    def parse_params(data: bytes, channels: int, latent_size: tuple[int, int] | None = None) -> QuantizedLatent:
        """Inverse of params_bytes, with no symbols yet; ``latent_size`` (h, w) is needed to
        dequantise rotated Haar bands. Raises QuantError on nonsense."""
        if data[:1] and data[0] & COMPACT:
            return _parse_compact(data, channels, latent_size)
        if len(data) < 5:
            raise QuantError("quantiser parameters truncated")
        kind, levels, rows = struct.unpack_from("<BHH", data)
        if kind not in KIND_NAMES:
            raise QuantError(f"unknown quantiser kind {kind}")
        offset, rotation, nominal = 5, NO_ROTATION, 0
        if kind in (ROTATED, *HAAR_KINDS):
            if len(data) < 8:
                raise QuantError("quantiser parameters truncated")
            rotation, nominal = struct.unpack_from("<BH", data, 5)
            offset = 8
            _check_rotated(rows, channels, levels, rotation, nominal,
                           MAX_HAAR_SYMBOLS if kind in HAAR_KINDS else MAX_ROTATED_SYMBOLS)
        cols = channels if kind == PALETTE else 2
        if kind == UNIFORM and (rows != channels or not 2 <= levels <= MAX_UNIFORM_LEVELS):
            raise QuantError(f"uniform quantiser with {rows} rows for {channels} channels, {levels} levels")
        if kind == PALETTE and (rows != levels or not 2 <= levels <= 4096):
            raise QuantError(f"palette of {rows} entries for {levels} levels")
        centre_bytes = 2 * rows if kind in HAAR_KINDS else 0
        if len(data) != offset + rows * cols * 2 + centre_bytes:
            raise QuantError("quantiser parameter table has the wrong length")
        table = np.frombuffer(data, "<f2", count=rows * cols, offset=offset).reshape(rows, cols).astype(np.float16)
        if not np.isfinite(table).all():
            raise QuantError("quantiser parameter table holds non-finite values")
        centres = None
        if kind in HAAR_KINDS:
            if not (table > 0).all():
                raise QuantError("rotated Haar quantiser with a step that is not positive")
            centres = np.frombuffer(data, "<i2", offset=offset + rows * cols * 2).astype(np.int16)
        return QuantizedLatent(kind, levels, np.zeros((0, 0, 0), np.int32), table, rotation, nominal, centres,
                               latent_size)


def _parse_compact(data: bytes, channels: int, latent_size: tuple[int, int] | None) -> QuantizedLatent:
    kind = data[0] & ~COMPACT
    if kind not in HAAR_KINDS or len(data) < 2:
        raise QuantError(f"unknown compact quantiser kind {kind}")
    rotation, pos, counts = data[1], 2, []
    for _ in range(3):
        value, pos = read_varint(data, pos, QuantError)
        counts.append(value)
    levels, rows, nominal = counts
    _check_rotated(rows, channels, levels, rotation, nominal, MAX_HAAR_SYMBOLS)
    if len(data) < pos + 2 * rows + 2:
        raise QuantError("quantiser parameters truncated")
    steps = np.frombuffer(data, "<f2", count=rows + 1, offset=pos).astype(np.float16)
    steps, gain, pos = steps[:rows], steps[rows], pos + 2 * rows + 2
    table = np.stack([steps, detail_steps(steps, gain)], axis=1)
    if not np.isfinite(table).all() or not (table > 0).all():
        raise QuantError("rotated Haar quantiser with a step that is not finite and positive")
    centres = []
    for _ in range(rows):
        value, pos = read_varint(data, pos, QuantError)
        centres.append(unzigzag(value))
    if pos != len(data) or not all(-32768 <= c <= 32767 for c in centres):
        raise QuantError("quantiser parameters have the wrong length or an impossible centre")
    return QuantizedLatent(kind, levels, np.zeros((0, 0, 0), np.int32), table, rotation, nominal,
                           np.array(centres, np.int16), latent_size)


def detail_steps(ll_steps: np.ndarray, gain: np.float16) -> np.ndarray:
    """float16 detail steps: each LL step times ``gain``, in float32 (exact on every machine)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return (ll_steps.astype(np.float32) * np.float32(gain)).astype(np.float16)


def symbol_shape(kind: int, channels: int, height: int, width: int) -> tuple[int, int, int]:
    """The (planes, h, w) symbols a quantiser of ``kind`` codes for a (channels, height, width) latent."""
    if kind == PALETTE:
        return 1, height, width
    if kind in HAAR_KINDS:
        return (wavelet.BANDS * channels, *wavelet.band_size(height, width))
    return channels, height, width


def haar_latent(codes, q: QuantizedLatent, lib, parts=None):
    """The (C, h, w) latent that rotated Haar ``codes`` (symbols, or their float stand-ins in
    refinement; numpy with ``lib=np`` or torch) stand for. ``parts``: ``haar_parts(q, lib, like)``,
    made once where the same ``q`` is synthesised many times (refinement)."""
    channels = len(q.table)
    bands = codes.reshape(wavelet.BANDS, channels, *codes.shape[1:])  # band-major planes -> (C, 4, bh, bw)
    bands = bands.transpose(0, 1) if lib is torch else bands.transpose(1, 0, 2, 3)
    steps, centres, matrix = parts or haar_parts(q, lib, codes)
    values = (bands - (q.levels // 2) + centres) * steps
    if NEST_DEPTH[q.kind]:
        ll = wavelet.unnest(values[:, 0], NEST_DEPTH[q.kind])
        values = torch.cat([ll[:, None], values[:, 1:]], 1) if lib is torch else \
            np.concatenate([ll[:, None], values[:, 1:]], axis=1)
    components = wavelet.inverse(values, *q.latent_size)
    if lib is torch:
        return torch.einsum("kc,khw->chw", matrix, components)
    return (matrix.T @ components.reshape(channels, -1)).reshape(components.shape).astype(np.float32)


def haar_parts(q: QuantizedLatent, lib, like=None):
    """``haar_steps`` and the rotation matrix, as ``lib`` arrays (torch: on ``like``'s device and dtype)."""
    steps, centres = haar_steps(q, lib, like)
    matrix = rotation_matrix(q.rotation, len(q.table))
    return steps, centres, torch.from_numpy(matrix.copy()).to(like) if lib is torch else matrix


def haar_steps(q: QuantizedLatent, lib, like=None):
    """(C, 4, 1, 1) step of each band and the centre in steps (LL's; 0 for the details), as ``lib``
    arrays: (C, 4, 1, 1), or for nested bands (C, 4, bh, bw), the centre only where LL holds averages."""
    table = q.table.astype(np.float32)
    steps = np.concatenate([table[:, :1], np.repeat(table[:, 1:2], wavelet.BANDS - 1, axis=1)], axis=1)
    steps = steps[:, :, None, None]
    centres = np.zeros_like(steps)
    if q.centres is not None:
        centres[:, 0] = q.centres[:, None, None]
    if NEST_DEPTH[q.kind]:
        mask = wavelet.averages_mask(*wavelet.band_size(*q.latent_size), NEST_DEPTH[q.kind]).astype(np.float32)
        centres = centres * np.concatenate([mask[None], np.zeros((wavelet.BANDS - 1, *mask.shape), np.float32)])
    if lib is torch:
        return torch.from_numpy(steps).to(like), torch.from_numpy(centres).to(like)
    return steps, centres


def _check_rotated(rows: int, channels: int, levels: int, rotation: int, nominal: int,
                   max_symbols: int = MAX_ROTATED_SYMBOLS) -> None:
    if rows != channels or not 2 <= levels <= max_symbols or not 2 <= nominal <= MAX_UNIFORM_LEVELS:
        raise QuantError(f"rotated quantiser with {rows} rows for {channels} channels, {levels} symbols, "
                         f"{nominal} levels")
    try:
        rotation_matrix(rotation, channels)
    except RotationError as exc:
        raise QuantError(str(exc)) from None


def grid_symbols(values: np.ndarray, q: QuantizedLatent) -> np.ndarray:
    """(C, h, w) values rounded to the nearest point of ``q``'s per-row uniform grid."""
    low, step = uniform_grid(q.table, q.levels)
    codes = (values - low[:, None, None]) / step[:, None, None]
    return np.clip(np.rint(codes), 0, q.levels - 1).astype(np.int32)


def uniform_grid(table: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    low = table[:, 0].astype(np.float32)
    step = (table[:, 1].astype(np.float32) - low) / np.float32(levels - 1)
    return low, np.maximum(step, np.float32(1e-6))


class UniformQuantizer:
    """Per-channel uniform scalar quantiser: 2^``bits`` levels, or ``levels`` (2..256) for rates between bits."""

    kind = UNIFORM

    def __init__(self, bits: int = 6, levels: int | None = None) -> None:
        if levels is None:
            if not 2 <= bits <= 8:
                raise QuantError(f"bits must be 2..8, not {bits}")
            levels = 1 << bits
        if not 2 <= levels <= MAX_UNIFORM_LEVELS:
            raise QuantError(f"levels must be 2..{MAX_UNIFORM_LEVELS}, not {levels}")
        self.levels = levels

    def quantize(self, latent: np.ndarray) -> QuantizedLatent:
        flat = latent.reshape(latent.shape[0], -1)
        low, high = flat.min(axis=1), flat.max(axis=1)
        high = np.where(high - low < 1e-3, low + 1e-3, high)
        table = np.stack([low, high], axis=1).astype(np.float16)
        q = QuantizedLatent(UNIFORM, self.levels, np.zeros((1,), np.int32), table)
        q.symbols = self.symbols_for(latent, q)
        return q

    def symbols_for(self, latent: np.ndarray, q: QuantizedLatent) -> np.ndarray:
        return grid_symbols(latent, q)


class RotatedQuantizer:
    """Uniform quantisation of the channels' principal components (a fixed rotation of each cell).

    Each component's step shrinks as its span grows (step ~ 1 / span, STEP_EXPONENT): the strong
    components carry what the decoder draws, the weak ones can be coarse. The steps' geometric
    mean is the step ``levels`` (or 2^``bits``) levels give the channels on average, so a setting
    costs about what the channels cost and looks better (docs/BENCHMARKS.md).
    """

    kind = ROTATED

    def __init__(self, bits: int = 6, levels: int | None = None, rotation: int = 1) -> None:
        self.levels = UniformQuantizer(bits, levels).levels
        self.rotation = rotation

    def quantize(self, latent: np.ndarray) -> QuantizedLatent:
        channels = latent.shape[0]
        components = rotation_matrix(self.rotation, channels) @ latent.reshape(channels, -1)
        low = components.min(axis=1)
        spans = np.maximum(components.max(axis=1) - low, 1e-3)
        steps = self.component_steps(latent, spans)
        needed = float((spans / steps).max()) + 1
        if needed > MAX_ROTATED_SYMBOLS:  # very many levels: coarsen every step alike to fit the coder
            steps *= needed / MAX_ROTATED_SYMBOLS
        symbols = min(max(int(np.ceil((spans / steps).max())) + 1, 2), MAX_ROTATED_SYMBOLS)
        table = np.stack([low, low + steps * (symbols - 1)], axis=1).astype(np.float16)
        q = QuantizedLatent(ROTATED, symbols, np.zeros((1,), np.int32), table, self.rotation, self.levels)
        q.symbols = grid_symbols(components.reshape(latent.shape), q)
        return q

    def component_steps(self, latent: np.ndarray, spans: np.ndarray) -> np.ndarray:
        """Each component's step: ``relative_steps`` scaled so their geometric mean is the channels' step."""
        steps = self.relative_steps(latent, spans)
        return steps * channel_step(latent, self.levels) / np.exp(np.log(steps).mean())

    def relative_steps(self, latent: np.ndarray, spans: np.ndarray) -> np.ndarray:
        """Each component's step up to a common factor (experiments override this to try other rules)."""
        return (spans / spans.mean()) ** STEP_EXPONENT


class RotatedHaarQuantizer(RotatedQuantizer):
    """The rotated quantiser's components split into one level of Haar bands before rounding.

    The LL band is rounded at the component's step (the rotated quantiser's rule), the three
    detail bands at ``detail_gain`` times it: smooth components' details are small, and a coarser
    grid for them puts the bits into the averages, which the decoder leans on. On whole Kodak
    photos this codes the same pictures in about 11 % fewer bytes than rounding every cell
    (docs/BENCHMARKS.md). Latents under ``MIN_HAAR_CELLS`` are rounded cell by cell, as a
    ``RotatedQuantizer`` does.
    """

    kind = HAAR

    def __init__(self, bits: int = 6, levels: int | None = None, rotation: int = 1,
                 detail_gain: float = DETAIL_GAIN) -> None:
        super().__init__(bits, levels, rotation)
        self.detail_gain = detail_gain

    def quantize(self, latent: np.ndarray) -> QuantizedLatent:
        channels, height, width = latent.shape
        if height * width < MIN_HAAR_CELLS:
            return super().quantize(latent)
        components = (rotation_matrix(self.rotation, channels) @ latent.reshape(channels, -1)).reshape(latent.shape)
        spans = np.maximum(components.max(axis=(1, 2)) - components.min(axis=(1, 2)), 1e-3)
        bands = haar_bands(components.astype(np.float64), self.kind)
        steps = self.component_steps(latent, spans)
        for _ in range(64):  # very many levels: coarsen every step alike until the coder's alphabet holds them
            q = self._rounded(bands, steps, (height, width))
            if q is not None:
                return q
            steps = steps * 1.25
        raise QuantError("latent too large in range for the rotated Haar quantiser")

    def _rounded(self, bands: np.ndarray, steps: np.ndarray, size: tuple[int, int]) -> QuantizedLatent | None:
        ll = np.maximum(steps.astype(np.float16), np.float16(1e-3))
        table = np.stack([ll, np.maximum(detail_steps(ll, np.float16(self.detail_gain)), np.float16(1e-3))], axis=1)
        q = QuantizedLatent(self.kind, 2, np.zeros((1,), np.int32), table, self.rotation, self.levels,
                            np.zeros(len(table), np.int16), size)
        band_steps, _ = haar_steps(q, np)
        codes = np.rint(bands / band_steps).astype(np.int64)
        averages = wavelet.averages_mask(*bands.shape[2:], NEST_DEPTH[self.kind])
        centres = np.clip(np.rint(codes[:, 0][:, averages].mean(axis=1)), -32768, 32767).astype(np.int64)
        codes[:, 0] -= centres[:, None, None] * averages
        half = int(np.abs(codes).max())
        if 2 * half + 1 > MAX_HAAR_SYMBOLS:
            return None
        q.levels, q.centres = max(2 * half + 1, 2), centres.astype(np.int16)
        q.symbols = (codes.transpose(1, 0, 2, 3).reshape(-1, *codes.shape[2:]) + q.levels // 2).astype(np.int32)
        return q


class NestedHaarQuantizer(RotatedHaarQuantizer):
    """The rotated Haar quantiser with a second Haar level nested in each LL band (``wavelet.nest``):
    every 2x2 block of LL becomes LL2 and three second-level details in place, all rounded at the
    component's LL step, the centre subtracted from LL2 only. The band planes keep their size and
    order, and the context coder codes LL2 and each second-level detail as groups of their own.
    On all 24 Kodak photos it codes the same pictures in 12 % fewer bytes than one level at 3
    levels, 6.7 % at 4, 1 % at 6 (docs/BENCHMARKS.md). Written by default from 2026-12-04 to -05,
    now where ``haar_levels`` is 2; ``DeepHaarQuantizer`` nests one level more."""

    kind = NESTED_HAAR


class DeepHaarQuantizer(RotatedHaarQuantizer):
    """The nested quantiser with a third Haar level nested in place in each LL band's LL2 values
    (``wavelet.nest`` at depth 2): LL3 four band cells apart, its details between, all at the LL
    step. The context coder can code LL2's grid as four groups of its own (its split first
    quarter), which are exactly LL3 and its three details."""

    kind = DEEP_HAAR


def haar_bands(components: np.ndarray, kind: int) -> np.ndarray:
    """(C, h, w) components -> the (C, 4, bh, bw) bands a quantiser of ``kind`` rounds."""
    bands = wavelet.forward(components)
    if NEST_DEPTH[kind]:
        bands[:, 0] = wavelet.nest(bands[:, 0], NEST_DEPTH[kind])
    return bands


def channel_step(latent: np.ndarray, levels: int) -> float:
    """The step ``levels`` levels give the (C, h, w) latent's channels on average."""
    flat = latent.reshape(latent.shape[0], -1)
    return max(float((flat.max(axis=1) - flat.min(axis=1)).mean()), 1e-3) / (levels - 1)


class PaletteQuantizer:
    """A per-image palette of latent vectors with Floyd-Steinberg dithering (Bühlmann's method)."""

    kind = PALETTE

    def __init__(self, size: int = 256, dither: bool = True, seed: int = 0, iterations: int = 12) -> None:
        if not 2 <= size <= 4096:
            raise QuantError(f"palette size must be 2..4096, not {size}")
        self.size = size
        self.dither = dither
        self.seed = seed
        self.iterations = iterations

    def quantize(self, latent: np.ndarray) -> QuantizedLatent:
        channels = latent.shape[0]
        vectors = latent.reshape(channels, -1).T.astype(np.float32)
        palette = _sort_by_principal_axis(_kmeans(vectors, self.size, self.seed, self.iterations))
        palette = palette.astype(np.float16)
        indices = _dither(latent, palette.astype(np.float32)) if self.dither else _nearest(vectors, palette.astype(np.float32))
        symbols = indices.reshape(1, *latent.shape[1:]).astype(np.int32)
        return QuantizedLatent(PALETTE, len(palette), symbols, palette)


def _kmeans(vectors: np.ndarray, k: int, seed: int, iterations: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if len(vectors) > 65536:
        vectors = vectors[rng.choice(len(vectors), 65536, replace=False)]
    unique = np.unique(vectors, axis=0)
    if len(unique) <= k:
        return np.concatenate([unique, np.repeat(unique[-1:], k - len(unique), axis=0)])
    centres = _kmeans_plus_plus(vectors, k, rng)
    for _ in range(iterations):
        assign = _nearest(vectors, centres)
        sums = np.zeros_like(centres)
        np.add.at(sums, assign, vectors)
        counts = np.bincount(assign, minlength=k)
        empty = counts == 0
        centres = np.where(empty[:, None], centres, sums / np.maximum(counts, 1)[:, None])
    return centres


def _kmeans_plus_plus(vectors: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [vectors[rng.integers(len(vectors))]]
    dist = ((vectors - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = dist.sum()
        pick = rng.choice(len(vectors), p=dist / total) if total > 0 else rng.integers(len(vectors))
        centres.append(vectors[pick])
        dist = np.minimum(dist, ((vectors - vectors[pick]) ** 2).sum(1))
    return np.stack(centres).astype(np.float32)


def _sort_by_principal_axis(palette: np.ndarray) -> np.ndarray:
    """Order entries along the first principal axis so that indices are roughly ordinal."""
    centred = palette - palette.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axis = vt[0] * (1.0 if vt[0].sum() >= 0 else -1.0)
    return palette[np.argsort(centred @ axis, kind="stable")]


def _nearest(vectors: np.ndarray, palette: np.ndarray) -> np.ndarray:
    out = np.empty(len(vectors), np.int64)
    norms = (palette**2).sum(1)
    for start in range(0, len(vectors), 16384):
        chunk = vectors[start:start + 16384]
        out[start:start + 16384] = np.argmin(norms[None, :] - 2 * chunk @ palette.T, axis=1)
    return out


def _dither(latent: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Floyd-Steinberg error diffusion over the latent grid, raster order."""
    channels, height, width = latent.shape
    work = latent.transpose(1, 2, 0).astype(np.float64).copy()
    pal = palette.astype(np.float64)
    out = np.empty((height, width), np.int64)
    for y in range(height):
        row = work[y]
        for x in range(width):
            value = row[x]
            idx = int(np.argmin(((pal - value) ** 2).sum(1)))
            out[y, x] = idx
            err = value - pal[idx]
            if x + 1 < width:
                row[x + 1] += err * (7 / 16)
            if y + 1 < height:
                below = work[y + 1]
                if x > 0:
                    below[x - 1] += err * (3 / 16)
                below[x] += err * (5 / 16)
                if x + 1 < width:
                    below[x + 1] += err * (1 / 16)
    return out.reshape(-1)


def make_quantizer(name: str, bits: int = 6, palette_size: int = 256, seed: int = 0, levels: int | None = None,
                   rotation: int = NO_ROTATION, bands: bool = True, haar_levels: int = 3):
    """``uniform`` codes the principal components where ``rotation`` names a rotation (as Haar bands
    unless ``bands`` is False: ``haar_levels`` (2 or 3) levels where the levels are few enough for
    the nested ones to pay, else one), the channels otherwise."""
    if name == "uniform":
        if rotation == NO_ROTATION:
            return UniformQuantizer(bits, levels)
        if not bands:
            return RotatedQuantizer(bits, levels, rotation)
        if haar_levels == 1 or (levels or 1 << bits) > NESTED_MAX_LEVELS:
            return RotatedHaarQuantizer(bits, levels, rotation)
        return (DeepHaarQuantizer if haar_levels >= 3 else NestedHaarQuantizer)(bits, levels, rotation)
    if name == "palette":
        return PaletteQuantizer(palette_size, seed=seed)
    raise QuantError(f"unknown quantiser {name!r} (uniform or palette)")


def straight_through_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()
