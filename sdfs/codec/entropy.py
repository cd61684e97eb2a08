"""Lossless coding of quantised latent symbols.

``context`` (the default): each plane is coded in four checkerboard phases, so every
symbol is predicted from already-coded neighbours in its own plane (above/below/left/right
or diagonal) and from the two previous planes at the same place. A per-group linear
predictor (weights sent as side information) gives the mean, a per-group activity -> scale
rule gives the spread of a discrete Laplace distribution, and a range coder
(``constriction``) codes the symbols against it. Within a group everything is vectorised.

All of the model's arithmetic that the decoder must repeat is integer or IEEE-exact
(add/multiply/divide, no exp/log), so a blob decodes identically on every machine.

``lzma`` is kept as the baseline coder the context coder is measured against.
"""

from __future__ import annotations

import lzma
from dataclasses import dataclass

import numpy as np

from .varint import encode_varint, read_varint

CONTEXT, LZMA = 1, 2
CODER_NAMES = {CONTEXT: "context", LZMA: "lzma"}

PHASES = ((0, 0), (1, 1), (0, 1), (1, 0))
DIRECT = ((-1, 0), (1, 0), (0, -1), (0, 1))
DIAGONAL = ((-1, -1), (-1, 1), (1, -1), (1, 1))
WEIGHT_BITS = 10
BUCKETS = 16
SCALES = 64
MAX_LEVELS = 4096
CHUNK = 8192


class EntropyError(ValueError):
    pass


def _scale_table() -> np.ndarray:
    """Laplace decay factors theta_s = b/(b+1) for b = 0.05 * 1.15^s (exact IEEE arithmetic)."""
    b, out = 0.05, []
    for _ in range(SCALES):
        out.append(b / (b + 1.0))
        b *= 1.15
    return np.array(out, np.float64)


THETA = _scale_table()


def _decay_rows(levels: int) -> np.ndarray:
    """rows[s, d] = theta_s ** d for d = 0..levels, by repeated multiplication."""
    steps = np.repeat(THETA[:, None], levels + 1, axis=1)
    steps[:, 0] = 1.0
    return np.maximum(np.cumprod(steps, axis=1), 1e-300)


_ROWS_CACHE: dict[int, np.ndarray] = {}


def decay_rows(levels: int) -> np.ndarray:
    if levels not in _ROWS_CACHE:
        _ROWS_CACHE[levels] = _decay_rows(levels)
    return _ROWS_CACHE[levels]


def encode(symbols: np.ndarray, levels: int, coder: int = CONTEXT) -> bytes:
    """Code int symbols (planes, h, w) in [0, levels) losslessly."""
    _check_shape(symbols.shape, levels)
    if symbols.min(initial=0) < 0 or symbols.max(initial=0) >= levels:
        raise EntropyError("symbol out of range")
    if coder == LZMA:
        dtype = np.uint8 if levels <= 256 else np.uint16
        return lzma.compress(symbols.astype(dtype).tobytes(), preset=9 | lzma.PRESET_EXTREME)
    if coder != CONTEXT:
        raise EntropyError(f"unknown entropy coder {coder}")
    return _ContextCoder(symbols.shape, levels).encode(symbols.astype(np.int64))


def decode(data: bytes, shape: tuple[int, int, int], levels: int, coder: int = CONTEXT) -> np.ndarray:
    """Inverse of encode; raises EntropyError on malformed data."""
    _check_shape(shape, levels)
    if coder == LZMA:
        return _decode_lzma(data, shape, levels)
    if coder != CONTEXT:
        raise EntropyError(f"unknown entropy coder {coder}")
    return _ContextCoder(shape, levels).decode(data).astype(np.int32)


def _check_shape(shape: tuple[int, ...], levels: int) -> None:
    if len(shape) != 3 or min(shape) < 1:
        raise EntropyError(f"bad symbol shape {shape}")
    if not 2 <= levels <= MAX_LEVELS:
        raise EntropyError(f"bad alphabet size {levels}")


def _decode_lzma(data: bytes, shape: tuple[int, int, int], levels: int) -> np.ndarray:
    dtype = np.uint8 if levels <= 256 else np.uint16
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    try:
        raw = lzma.LZMADecompressor().decompress(data, max_length=expected + 1)
    except lzma.LZMAError as exc:
        raise EntropyError(f"lzma payload corrupt: {exc}") from None
    if len(raw) != expected:
        raise EntropyError("lzma payload has the wrong length")
    out = np.frombuffer(raw, dtype).reshape(shape).astype(np.int32)
    if out.max(initial=0) >= levels:
        raise EntropyError("symbol out of range")
    return out


@dataclass
class _Group:
    features: np.ndarray  # (n, k) int64
    activity: np.ndarray  # (n,) int64
    mask: np.ndarray  # (h, w) bool


class _ContextCoder:
    def __init__(self, shape: tuple[int, int, int], levels: int) -> None:
        self.planes, self.height, self.width = shape
        self.levels = levels
        self.mid = levels // 2
        self.rows = decay_rows(levels)
        self.masks = [_phase_mask(self.height, self.width, ph) for ph in PHASES]

    # --- shared by both directions -------------------------------------------------
    def groups(self):
        for plane in range(self.planes):
            for phase in range(len(PHASES)):
                if self.masks[phase].any():
                    yield plane, phase

    def group(self, known: np.ndarray, plane: int, phase: int) -> _Group:
        mask = self.masks[phase]
        centred = known - self.mid
        cur = centred[plane]
        feats = [np.ones(int(mask.sum()), np.int64)]
        activity = np.zeros(int(mask.sum()), np.int64)
        if phase > 0:
            pattern = DIAGONAL if phase == 1 else DIRECT
            total, spread = _neighbourhood(cur, pattern, mask)
            feats.append(total)
            activity = spread
            if phase == 3:
                feats.append(_neighbourhood(cur, DIAGONAL, mask)[0])
        for prev in (plane - 1, plane - 2):
            if prev < 0:
                continue
            pattern = DIAGONAL if phase == 1 else DIRECT
            total, spread = _neighbourhood(centred[prev], pattern, mask)
            feats.append(centred[prev][mask])
            feats.append(total)
            if phase == 0 and prev == plane - 1:
                activity = spread + np.abs(4 * centred[prev][mask] - total)
        return _Group(np.stack(feats, axis=1), activity, mask)

    def predict(self, group: _Group, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fixed-point prediction: integer floor and fraction (in 1/2^WEIGHT_BITS)."""
        acc = (group.features * weights[None, :]).sum(axis=1) + (self.mid << WEIGHT_BITS)
        acc = np.clip(acc, 0, (self.levels - 1) << WEIGHT_BITS)
        return acc >> WEIGHT_BITS, acc & ((1 << WEIGHT_BITS) - 1)

    def probabilities(self, base: np.ndarray, frac: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Rows p(x) ~ (1-f) theta^|x-base| + f theta^|x-base-1| over x in [0, levels)."""
        x = np.arange(self.levels)[None, :]
        lo = self.rows[scale[:, None], np.abs(x - base[:, None])]
        hi = self.rows[scale[:, None], np.abs(x - base[:, None] - 1)]
        f = frac[:, None].astype(np.float64) / float(1 << WEIGHT_BITS)
        return lo * (1.0 - f) + hi * f

    # --- encoder ----------------------------------------------------------------------
    def encode(self, symbols: np.ndarray) -> bytes:
        import constriction

        coder = constriction.stream.queue.RangeEncoder()
        side = bytearray()
        known = np.zeros_like(symbols)
        for plane, phase in self.groups():
            group = self.group(known, plane, phase)
            target = symbols[plane][group.mask]
            weights = _fit_weights(group.features, target - self.mid)
            base, frac = self.predict(group, weights)
            buckets = _bucket(group.activity)
            nearest = base + (frac >= (1 << (WEIGHT_BITS - 1)))
            alpha, beta = _fit_scale_rule(target - nearest, buckets, self.levels)
            side += _pack_group(weights, alpha, beta)
            scale = _scale_of(buckets, alpha, beta)
            self._code_chunks(coder, target, base, frac, scale)
            known[plane][group.mask] = target
        payload = coder.get_compressed().tobytes()
        return _varint(len(side)) + bytes(side) + payload

    def _code_chunks(self, coder, target, base, frac, scale) -> None:
        import constriction

        family = constriction.stream.model.Categorical(perfect=False)
        for start in range(0, len(target), CHUNK):
            sl = slice(start, start + CHUNK)
            probs = self.probabilities(base[sl], frac[sl], scale[sl])
            coder.encode(target[sl].astype(np.int32), family, probs)

    # --- decoder ----------------------------------------------------------------------
    def decode(self, data: bytes) -> np.ndarray:
        import constriction

        side_len, pos = _read_varint(data, 0)
        if pos + side_len > len(data):
            raise EntropyError("side information truncated")
        side, payload = data[pos:pos + side_len], data[pos + side_len:]
        if len(payload) % 4:
            raise EntropyError("range-coded payload is not a whole number of words")
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, np.uint32).copy())
        family = constriction.stream.model.Categorical(perfect=False)
        known = np.zeros((self.planes, self.height, self.width), np.int64)
        offset = 0
        for plane, phase in self.groups():
            group = self.group(known, plane, phase)
            weights, alpha, beta, offset = _unpack_group(side, offset, group.features.shape[1])
            base, frac = self.predict(group, weights)
            scale = _scale_of(_bucket(group.activity), alpha, beta)
            values = np.empty(len(base), np.int64)
            for start in range(0, len(base), CHUNK):
                sl = slice(start, start + CHUNK)
                try:
                    values[sl] = decoder.decode(family, self.probabilities(base[sl], frac[sl], scale[sl]))
                except Exception as exc:  # constriction raises plain errors on exhausted input
                    raise EntropyError(f"range-coded payload corrupt: {exc}") from None
            known[plane][group.mask] = values
        if offset != len(side):
            raise EntropyError("side information has trailing bytes")
        return known


def _phase_mask(height: int, width: int, phase: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[phase[0]::2, phase[1]::2] = True
    return mask


def _neighbourhood(plane: np.ndarray, pattern, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum of the pattern's neighbours at masked positions, and their spread sum|4n - sum|.

    Borders mirror (which keeps a neighbour's checkerboard phase); a side of length 1 repeats.
    """
    modes = ["reflect" if n > 1 else "edge" for n in plane.shape]
    padded = np.pad(plane, ((1, 1), (0, 0)), mode=modes[0])
    padded = np.pad(padded, ((0, 0), (1, 1)), mode=modes[1])
    height, width = plane.shape
    values = [padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width][mask] for dy, dx in pattern]
    total = sum(values)
    spread = sum(np.abs(4 * v - total) for v in values)
    return total, spread


def _fit_weights(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    f = features.astype(np.float64)
    weights, *_ = np.linalg.lstsq(f, target.astype(np.float64), rcond=None)
    weights = np.nan_to_num(weights)
    limit = (1 << 20) - 1
    return np.clip(np.rint(weights * (1 << WEIGHT_BITS)), -limit, limit).astype(np.int64)


def _bucket(activity: np.ndarray) -> np.ndarray:
    """log2 activity buckets: 0, 1, 2-3, 4-7, ..."""
    bits = np.zeros(activity.shape, np.int64)
    a = activity.copy()
    while (a > 0).any():
        bits += a > 0
        a >>= 1
    return np.minimum(bits, BUCKETS - 1)


def _scale_of(buckets: np.ndarray, alpha: int, beta: int) -> np.ndarray:
    return np.clip(alpha + (beta * buckets) // 4, 0, SCALES - 1)


def _fit_scale_rule(residual: np.ndarray, buckets: np.ndarray, levels: int) -> tuple[int, int]:
    """Choose (alpha, beta) minimising the estimated code length of the residuals."""
    rows = decay_rows(levels)
    dist = np.abs(residual)
    bits = -np.log2(rows[:, :levels] / (2 * rows[:, :levels].sum(axis=1, keepdims=True) - 1.0))  # (S, levels)
    cost = np.zeros((BUCKETS, SCALES))
    for b in np.unique(buckets):
        hist = np.bincount(dist[buckets == b], minlength=levels)[:levels]
        cost[b] = bits @ hist
    best, best_cost = (0, 0), np.inf
    for beta in range(0, 33):
        scales = np.clip(np.arange(SCALES)[:, None] + (beta * np.arange(BUCKETS)[None, :]) // 4, 0, SCALES - 1)
        totals = cost[np.arange(BUCKETS)[None, :], scales].sum(axis=1)
        alpha = int(np.argmin(totals))
        if totals[alpha] < best_cost:
            best, best_cost = (alpha, beta), totals[alpha]
    return best


def _pack_group(weights: np.ndarray, alpha: int, beta: int) -> bytes:
    out = bytearray()
    for w in weights:
        out += _varint((int(w) << 1) ^ (int(w) >> 63))
    out += bytes([alpha, beta])
    return bytes(out)


def _unpack_group(side: bytes, offset: int, count: int) -> tuple[np.ndarray, int, int, int]:
    weights = []
    for _ in range(count):
        z, offset = _read_varint(side, offset)
        weights.append((z >> 1) ^ -(z & 1))
    if offset + 2 > len(side):
        raise EntropyError("side information truncated")
    alpha, beta = side[offset], side[offset + 1]
    if alpha >= SCALES or beta > 32:
        raise EntropyError("side information holds an invalid scale rule")
    return np.array(weights, np.int64), alpha, beta, offset + 2


def _varint(value: int) -> bytes:
    return encode_varint(value)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    return read_varint(data, offset, EntropyError)
