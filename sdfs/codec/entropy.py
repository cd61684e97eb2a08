"""Lossless coding of quantised latent symbols.

``context`` (the default): each plane is coded in four checkerboard phases, so every
symbol is predicted from already-coded neighbours in its own plane (above/below/left/right
or diagonal) and from the two previous planes at the same place. A per-group linear
predictor (weights sent as side information) gives the mean, a per-group activity -> scale
rule gives the spread of a discrete Laplace distribution, and a range coder
(``constriction``) codes the symbols against it. Within a group everything is vectorised.

Versions, each still decoding. ``context v1`` (coder 1, written until 2026-11-27) codes every
plane in the four phases above and sends every weight at 1/1024 as a varint and the scale rule
in two bytes. ``context v3`` (coder 3) sends each group's weights at the precision the encoder
finds cheapest for that group (estimated code length of the group's symbols plus its weights),
as Exp-Golomb codes in a bit stream, and the scale rule in 12 bits; and where the encoder
estimates it pays, it codes a plane's first phase (which sees no neighbours of its own plane)
as a checkerboard of its own, two cells apart, with one bit per plane saying so.

``context v4`` (coder 4) is coder 3 plus one escape. A group whose weights are all zero (no
prediction, the distribution centred on the alphabet's middle) says so with the precision
field's unused value 15 and sends no weights. sd3's Haar bands have 64 planes, 256 groups, and
most detail bands need no prediction: coder 3 paid 3 bits a zero weight, about 20 bits a group.

``context v5`` (coder 5, written from 2026-12-04 to -07) is coder 4 with a peaked Laplace: each
group sends a factor (``PEAKS``, 1 bit for "none", else 5 bits) on the probability of the
predicted value itself, where a bit per plane says its groups send one. At few levels sd3's detail
bands are 85-95 % exact zeros with Laplace tails, and one Laplace fitted to both pays for the
spike in its tails. All 24 Kodak photos, sd3 bands: -15.5 % bytes at 3 levels, -7.4 % at 4,
nothing from 8 up (docs/CODEC.md).

``context v6`` (coder 6, written on 2026-12-07) codes the same model's side information in fewer bits.
Under coder 5 it was about 700 bytes of every sd3 blob whatever its size (16 % of a Kodak photo's
at 3 levels), nearly all of it fixed-width fields: 4 bits a group to say "no weights", 12 for
the scale rule. Coder 6 starts each plane with a bit that says it is flat (every symbol the
alphabet's middle: nothing more is sent for it), gives each group one bit for whether weights
follow, and sends alpha and beta as Exp-Golomb codes of order 0 and 1, whose lengths the encoder
adds to the code length it minimises when it picks them. All 24 Kodak photos, sd3: -8.9 % of the
blob at 3 levels (docs/BENCHMARKS.md).

``context`` (coder 7, since 2026-12-07, late) codes coder 6's flags, scale rules and peaks in the range
coder's stream, each against a model that starts from the shape of coder 6's code for it and learns
the blob's own skew as it goes (``side_model.py``); only the prediction weights stay in the bit
stream. Each group's fields are coded just before its symbols, and the encoder prices the rules and
peaks at the models' current odds. All 24 Kodak photos, sd3: -3.1 % of the entropy-coded payload at
3 levels, -0.6 % at 8 (docs/BENCHMARKS.md).

All of the model's arithmetic that the decoder must repeat is integer or IEEE-exact
(add/multiply/divide, no exp/log), so a blob decodes identically on every machine.

``lzma`` is kept as the baseline coder the context coder is measured against.
"""

from __future__ import annotations

import functools
import lzma
from dataclasses import dataclass

import numpy as np

from .bitstream import BitReader, BitWriter
from .side_model import SideModel
from .varint import encode_varint, read_varint, unzigzag, zigzag

CONTEXT_V1, LZMA, CONTEXT_V3, CONTEXT_V4, CONTEXT_V5, CONTEXT_V6, CONTEXT = 1, 2, 3, 4, 5, 6, 7
CODER_NAMES = {CONTEXT_V1: "context v1", LZMA: "lzma", CONTEXT_V3: "context v3", CONTEXT_V4: "context v4",
               CONTEXT_V5: "context v5", CONTEXT_V6: "context v6", CONTEXT: "context"}
CONTEXT_CODERS = (CONTEXT_V1, CONTEXT_V3, CONTEXT_V4, CONTEXT_V5, CONTEXT_V6, CONTEXT)

DIRECT = ((-1, 0), (1, 0), (0, -1), (0, 1))
DIAGONAL = ((-1, -1), (-1, 1), (1, -1), (1, 1))
WEIGHT_BITS = 10
BUCKETS = 16
SCALES = 64
MAX_LEVELS = 4096
CHUNK = 8192
WEIGHT_LIMIT = (1 << 20) - 1
MAX_SHIFT = 10  # coarsest weight precision: whole units (1 << WEIGHT_BITS in fixed point)
SHIFT_BITS, SCALE_RULE_BITS, GOLOMB_ORDER = 4, 6, 2
NO_PREDICTION = (1 << SHIFT_BITS) - 1  # coder 4: in the precision field, "all weights zero, none sent"
# coder 5: a group's peak, the factor on the probability of the predicted value itself (1: plain
# Laplace). Each is exact in binary, so every machine builds the same tables.
PEAKS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0, 128.0, 192.0, 256.0)
PEAK_BITS = 4  # after a one-bit flag: the index into PEAKS[1:]
# coder 6: what each peak adds to a group's side information (the flag bit is paid by every group of the plane)
_PEAK_EXTRA_BITS = np.where(np.arange(len(PEAKS)) > 0, PEAK_BITS, 0)
ALPHA_ORDER, BETA_ORDER = 0, 1  # coder 6: the Exp-Golomb orders of a group's scale rule (coder 7: its prior)


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


def _peaked(values: np.ndarray, distance: np.ndarray, peak: int) -> np.ndarray:
    """Looked-up ``decay_rows`` values with distance 0 times PEAKS[peak] (exact: rows[:, 0] is 1)."""
    return values * np.where(distance == 0, PEAKS[peak], 1.0) if peak else values


def encode(symbols: np.ndarray, levels: int, coder: int = CONTEXT) -> bytes:
    """Code int symbols (planes, h, w) in [0, levels) losslessly."""
    _check_shape(symbols.shape, levels)
    if symbols.min(initial=0) < 0 or symbols.max(initial=0) >= levels:
        raise EntropyError("symbol out of range")
    if coder == LZMA:
        dtype = np.uint8 if levels <= 256 else np.uint16
        return lzma.compress(symbols.astype(dtype).tobytes(), preset=9 | lzma.PRESET_EXTREME)
    if coder not in CONTEXT_CODERS:
        raise EntropyError(f"unknown entropy coder {coder}")
    return _ContextCoder(symbols.shape, levels, coder).encode(symbols.astype(np.int64))


def decode(data: bytes, shape: tuple[int, int, int], levels: int, coder: int = CONTEXT) -> np.ndarray:
    """Inverse of encode; raises EntropyError on malformed data."""
    _check_shape(shape, levels)
    if coder == LZMA:
        return _decode_lzma(data, shape, levels)
    if coder not in CONTEXT_CODERS:
        raise EntropyError(f"unknown entropy coder {coder}")
    return _ContextCoder(shape, levels, coder).decode(data).astype(np.int32)


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


@dataclass(frozen=True)
class Phase:
    """One group of every plane: the positions ``offset`` mod ``step``, and the already-coded
    neighbours in the same plane it is predicted from (each pattern one feature, ``distance`` apart)."""

    offset: tuple[int, int]
    step: int
    own: tuple[tuple[tuple[int, int], ...], ...] = ()
    distance: int = 1


# v1: a checkerboard of four phases; the first quarter has no neighbours in its own plane.
PHASES_V1 = (Phase((0, 0), 2), Phase((1, 1), 2, (DIAGONAL,)), Phase((0, 1), 2, (DIRECT,)),
             Phase((1, 0), 2, (DIRECT, DIAGONAL)))
# Since coder 3 the encoder may code that first quarter of a plane as a checkerboard of its own,
# two cells apart (one bit per plane says which): the strongest sd3 components are smooth enough
# that their first quarter cost 1.5x the other phases, while on weak ones three more groups of
# side information cost more than they save.
SPLIT_QUARTER = (Phase((0, 0), 4), Phase((2, 2), 4, (DIAGONAL,), 2), Phase((0, 2), 4, (DIRECT,), 2),
                 Phase((2, 0), 4, (DIRECT, DIAGONAL), 2))


@dataclass
class _Group:
    features: np.ndarray  # (n, k) int64
    activity: np.ndarray  # (n,) int64
    mask: np.ndarray  # (h, w) bool


class _ContextCoder:
    def __init__(self, shape: tuple[int, int, int], levels: int, version: int = CONTEXT) -> None:
        self.planes, self.height, self.width = shape
        self.levels = levels
        self.lean = version in (CONTEXT_V3, CONTEXT_V4, CONTEXT_V5, CONTEXT_V6, CONTEXT)
        # groups without prediction send no weights
        self.escape = version in (CONTEXT_V4, CONTEXT_V5, CONTEXT_V6, CONTEXT)
        self.peaked = version in (CONTEXT_V5, CONTEXT_V6, CONTEXT)  # groups may send a peak
        self.compact = version in (CONTEXT_V6, CONTEXT)  # coder 6: flat planes, a flag for prediction, priced rules
        self.adaptive = version == CONTEXT  # coder 7: flags, rules and peaks range-coded by models that learn
        self.side: SideModel | None = None
        self.peaks = tuple(range(len(PEAKS))) if self.peaked else (0,)
        self.mid = levels // 2
        self._masks = {ph: _phase_mask(self.height, self.width, ph) for ph in PHASES_V1 + SPLIT_QUARTER}

    # --- shared by both directions -------------------------------------------------
    def phases(self, split: bool) -> tuple[Phase, ...]:
        """A plane's groups in coding order, those with no positions left out."""
        phases = SPLIT_QUARTER + PHASES_V1[1:] if split else PHASES_V1
        return tuple(ph for ph in phases if self._masks[ph].any())

    def group(self, known: np.ndarray, plane: int, phase: Phase) -> _Group:
        mask, own = self._masks[phase], phase.own
        centred = known - self.mid
        feats = [np.ones(int(mask.sum()), np.int64)]
        activity = np.zeros(int(mask.sum()), np.int64)
        for i, pattern in enumerate(own):
            total, spread = _neighbourhood(centred[plane], pattern, mask, phase.distance)
            feats.append(total)
            if i == 0:
                activity = spread
        previous_pattern = DIAGONAL if own == (DIAGONAL,) else DIRECT
        for prev in (plane - 1, plane - 2):
            if prev < 0:
                continue
            total, spread = _neighbourhood(centred[prev], previous_pattern, mask)
            feats.append(centred[prev][mask])
            feats.append(total)
            if not own and prev == plane - 1:
                activity = spread + np.abs(4 * centred[prev][mask] - total)
        return _Group(np.stack(feats, axis=1), activity, mask)

    def predict(self, group: _Group, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fixed-point prediction: integer floor and fraction (in 1/2^WEIGHT_BITS)."""
        acc = (group.features * weights[None, :]).sum(axis=1) + (self.mid << WEIGHT_BITS)
        acc = np.clip(acc, 0, (self.levels - 1) << WEIGHT_BITS)
        return acc >> WEIGHT_BITS, acc & ((1 << WEIGHT_BITS) - 1)

    def probabilities(self, base: np.ndarray, frac: np.ndarray, scale: np.ndarray, peak: int = 0) -> np.ndarray:
        """Rows p(x) ~ (1-f) r(|x-base|) + f r(|x-base-1|) over x in [0, levels), r(d) = theta^d except
        r(0) = the group's peak."""
        x = np.arange(self.levels)[None, :]
        rows = decay_rows(self.levels)
        near, far = np.abs(x - base[:, None]), np.abs(x - base[:, None] - 1)
        lo = _peaked(rows[scale[:, None], near], near, peak)
        hi = _peaked(rows[scale[:, None], far], far, peak)
        f = frac[:, None].astype(np.float64) / float(1 << WEIGHT_BITS)
        return lo * (1.0 - f) + hi * f

    # --- encoder ----------------------------------------------------------------------
    def encode(self, symbols: np.ndarray) -> bytes:
        import constriction

        coder = constriction.stream.queue.RangeEncoder()
        family = constriction.stream.model.Categorical(perfect=False)
        side, bits = bytearray(), BitWriter()
        self.side = _side_model() if self.adaptive else None
        flag = functools.partial(self._write_flag, bits, coder, family)
        known = np.zeros_like(symbols)
        for plane in range(self.planes):
            if self.compact:
                flat = bool((symbols[plane] == self.mid).all())
                flag("flat", flat)
                if flat:
                    known[plane] = self.mid
                    continue
            split, priced = False, {}
            if self.lean:
                split, priced = self._first_quarter(symbols, known, plane)
                flag("split", split)
            chosen = []
            for phase in self.phases(split):
                group = self.group(known, plane, phase)
                target = symbols[plane][group.mask]
                chosen.append((group, target, priced.get(phase) or self._cheapest(group, target)))
                known[plane][group.mask] = target
            peaked = self.peaked and any(choice[5] for _, _, choice in chosen)
            if self.peaked:
                flag("peaked", peaked)  # coder 5: whether this plane's groups send peaks
            for group, target, (_, weights, shift, alpha, beta, peak) in chosen:
                if self.adaptive:
                    self._code_group(bits, coder, family, weights, shift, alpha, beta, peak, peaked)
                elif self.lean:
                    _write_group(bits, weights, shift, alpha, beta, self.escape, peak, peaked, self.compact)
                else:
                    side += _pack_group(weights, alpha, beta)
                base, frac = self.predict(group, weights)
                scale = _scale_of(_bucket(group.activity), alpha, beta)
                self._code_chunks(coder, family, target, base, frac, scale, peak)
        if self.lean:
            side = bits.to_bytes()
        payload = coder.get_compressed().tobytes()
        return _varint(len(side)) + bytes(side) + payload

    def _write_flag(self, bits: BitWriter, coder, family, name: str, value: bool) -> None:
        if self.adaptive:
            self.side.flags[name].encode(coder, family, int(value))
        else:
            bits.write(int(value), 1)

    def _code_group(self, bits: BitWriter, coder, family, weights: np.ndarray, shift: int, alpha: int, beta: int,
                    peak: int, peaked: bool) -> None:
        """Coder 7: the group's flag, rule and peak into the range coder, its weights (if any) into the bit stream."""
        self.side.flags["weights"].encode(coder, family, int(weights.any()))
        if weights.any():
            _write_weights(bits, weights, shift)
        self.side.alpha.encode(coder, family, alpha)
        self.side.beta.encode(coder, family, beta)
        if peaked:
            self.side.peak.encode(coder, family, peak)

    def _first_quarter(self, symbols: np.ndarray, known: np.ndarray, plane: int) -> tuple[bool, dict]:
        """Whether coding the plane's first quarter as a checkerboard of its own is estimated to cost
        less, and the cheapest choice (``_cheapest``) for each of the groups that way."""
        options = []
        for phases in (SPLIT_QUARTER, PHASES_V1[:1]):
            trial, priced = known.copy(), {}
            for phase in (ph for ph in phases if self._masks[ph].any()):
                group = self.group(trial, plane, phase)
                priced[phase] = self._cheapest(group, symbols[plane][group.mask])
                trial[plane][group.mask] = symbols[plane][group.mask]
            options.append((sum(choice[0] for choice in priced.values()), priced))
        split = options[0][0] < options[1][0]
        return split, options[0 if split else 1][1]

    def _cheapest(self, group: _Group, target: np.ndarray):
        """(estimated bits, weights, shift, alpha, beta, peak) at the weights' cheapest precision (v1: 1/1024 only)."""
        buckets = _bucket(group.activity)
        fitted = _fit_weights(group.features, target - self.mid)
        shifts = range(MAX_SHIFT + 1) if self.lean else (0,)
        # the precision is chosen under the plain Laplace, then the peak for it (searching every
        # peak at every precision costs ten times the time for a few bytes a photo)
        choices = [self._priced(group, target, buckets, fitted, shift) for shift in shifts]
        best = min(choices, key=lambda c: c[0])
        if self.peaked:
            best = min(best, self._priced(group, target, buckets, fitted, best[2], self.peaks), key=lambda c: c[0])
        if self.escape:
            zero = np.zeros_like(fitted)
            best = min(best, self._priced(group, target, buckets, zero, MAX_SHIFT, self.peaks), key=lambda c: c[0])
        return best

    def _priced(self, group: _Group, target: np.ndarray, buckets: np.ndarray, fitted: np.ndarray, shift: int,
                peaks=(0,)):
        """(estimated bits, weights, shift, alpha, beta, peak) for the fitted weights at precision 2^shift / 2^10,
        the best of ``peaks``."""
        weights = _rounded(fitted, shift) << shift
        base, frac = self.predict(group, weights)
        nearest = base + (frac >= (1 << (WEIGHT_BITS - 1)))
        rule_bits, peak_bits = self._side_prices()
        alpha, beta, peak, cost = _fit_scale_rule(target - nearest, buckets, self.levels, peaks, rule_bits, peak_bits)
        if self.lean:
            cost = self.estimated_bits(target, base, frac, _scale_of(buckets, alpha, beta), peak)
            probe = BitWriter()
            if self.adaptive:
                if weights.any():
                    _write_weights(probe, weights, shift)
                cost += self.side.group_bits(bool(weights.any()), alpha, beta, peak)
            else:
                _write_group(probe, weights, shift, alpha, beta, self.escape, peak, self.peaked, self.compact)
            cost += len(probe)
        return cost, weights, shift, alpha, beta, peak

    def _side_prices(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """What each scale rule [beta, alpha] and each peak costs to send, where the encoder weighs it (coder 6 on)."""
        if self.adaptive:
            return self.side.rule_bits(), self.side.peak.bits()
        if self.compact:
            return _RULE_BITS, _PEAK_EXTRA_BITS
        return None, None

    def estimated_bits(self, target: np.ndarray, base: np.ndarray, frac: np.ndarray, scale: np.ndarray,
                       peak: int = 0) -> float:
        """Code length of the targets under ``probabilities``, ignoring the alphabet's ends (cheap: no rows)."""
        f = frac.astype(np.float64) / float(1 << WEIGHT_BITS)
        rows = decay_rows(self.levels)
        near = np.minimum(np.abs(target - base), self.levels)
        far = np.minimum(np.abs(target - base - 1), self.levels)
        lo, hi = _peaked(rows[scale, near], near, peak), _peaked(rows[scale, far], far, peak)
        theta = THETA[scale]
        total = (1.0 + theta) / (1.0 - theta) + (PEAKS[peak] - 1.0)  # the two-sided sum of r(d)
        return float(-np.log2((lo * (1.0 - f) + hi * f) / total).sum())

    def _code_chunks(self, coder, family, target, base, frac, scale, peak: int = 0) -> None:
        for start in range(0, len(target), CHUNK):
            sl = slice(start, start + CHUNK)
            probs = self.probabilities(base[sl], frac[sl], scale[sl], peak)
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
        offset, bits = 0, BitReader(side, EntropyError)
        self.side = _side_model() if self.adaptive else None
        flag = functools.partial(self._read_flag, bits, decoder, family)
        for plane in range(self.planes):
            if self.compact and flag("flat"):  # a flat plane: every symbol the alphabet's middle
                known[plane] = self.mid
                continue
            phases = self.phases(flag("split") if self.lean else False)
            peaked = self.peaked and flag("peaked")
            for phase in phases:
                group = self.group(known, plane, phase)
                peak = 0
                if self.adaptive:
                    weights, alpha, beta, peak = self._decode_group(bits, decoder, family, group.features.shape[1],
                                                                    peaked)
                elif self.lean:
                    weights, alpha, beta, peak = _read_group(bits, group.features.shape[1], self.escape, peaked,
                                                             self.compact)
                else:
                    weights, alpha, beta, offset = _unpack_group(side, offset, group.features.shape[1])
                base, frac = self.predict(group, weights)
                scale = _scale_of(_bucket(group.activity), alpha, beta)
                known[plane][group.mask] = self._decode_values(decoder, family, base, frac, scale, peak)
        trailing = not bits.padding_is_clean() if self.lean else offset != len(side)
        if trailing:
            raise EntropyError("side information has trailing bytes")
        return known

    def _read_flag(self, bits: BitReader, decoder, family, name: str) -> bool:
        if self.adaptive:
            return bool(self.side.flags[name].decode(decoder, family, EntropyError))
        return bool(bits.read(1))

    def _decode_group(self, bits: BitReader, decoder, family, count: int, peaked: bool
                      ) -> tuple[np.ndarray, int, int, int]:
        weighted = self.side.flags["weights"].decode(decoder, family, EntropyError)
        weights = _read_weights(bits, count) if weighted else [0] * count
        alpha = self.side.alpha.decode(decoder, family, EntropyError)
        beta = self.side.beta.decode(decoder, family, EntropyError)
        peak = self.side.peak.decode(decoder, family, EntropyError) if peaked else 0
        return np.array(weights, np.int64), alpha, beta, peak

    def _decode_values(self, decoder, family, base: np.ndarray, frac: np.ndarray, scale: np.ndarray,
                       peak: int) -> np.ndarray:
        values = np.empty(len(base), np.int64)
        for start in range(0, len(base), CHUNK):
            sl = slice(start, start + CHUNK)
            try:
                values[sl] = decoder.decode(family, self.probabilities(base[sl], frac[sl], scale[sl], peak))
            except Exception as exc:  # constriction raises plain errors on exhausted input
                raise EntropyError(f"range-coded payload corrupt: {exc}") from None
        return values


def _phase_mask(height: int, width: int, phase: Phase) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[phase.offset[0]::phase.step, phase.offset[1]::phase.step] = True
    return mask


def _neighbourhood(plane: np.ndarray, pattern, mask: np.ndarray, distance: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sum of the pattern's neighbours ``distance`` away at masked positions, and their spread sum|4n - sum|.

    Borders mirror (which keeps a neighbour's place in the phases); a side of length 1 repeats.
    """
    modes = ["reflect" if n > 1 else "edge" for n in plane.shape]
    pad = distance * max(max(abs(dy), abs(dx)) for dy, dx in pattern)
    padded = np.pad(plane, ((pad, pad), (0, 0)), mode=modes[0])
    padded = np.pad(padded, ((0, 0), (pad, pad)), mode=modes[1])
    height, width = plane.shape
    values = [padded[pad + distance * dy:pad + distance * dy + height,
                     pad + distance * dx:pad + distance * dx + width][mask] for dy, dx in pattern]
    total = sum(values)
    spread = sum(np.abs(4 * v - total) for v in values)
    return total, spread


def _fit_weights(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares weights in units of 1/2^WEIGHT_BITS (float; ``_rounded`` makes them integers)."""
    f = features.astype(np.float64)
    weights, *_ = np.linalg.lstsq(f, target.astype(np.float64), rcond=None)
    return np.clip(np.nan_to_num(weights) * (1 << WEIGHT_BITS), -WEIGHT_LIMIT, WEIGHT_LIMIT)


def _rounded(weights: np.ndarray, shift: int) -> np.ndarray:
    """Weights in units of 2^shift / 2^WEIGHT_BITS, within the limit once shifted back."""
    bound = WEIGHT_LIMIT >> shift
    return np.clip(np.rint(weights / (1 << shift)), -bound, bound).astype(np.int64)


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


MAX_BETA = 32
# _RULE_SCALES[beta, alpha, bucket]: the scale every (alpha, beta) rule gives each activity bucket
_RULE_SCALES = np.clip(np.arange(SCALES)[None, :, None] + (np.arange(MAX_BETA + 1)[:, None, None]
                                                         * np.arange(BUCKETS)[None, None, :]) // 4, 0, SCALES - 1)


def _golomb_bits(values: np.ndarray, order: int) -> np.ndarray:
    """Lengths of the Exp-Golomb codes of order ``order`` of ``values`` >= 0."""
    return 2 * np.floor(np.log2((values >> order) + 1)).astype(np.int64) + 1 + order


# coder 6: _RULE_BITS[beta, alpha], the bits that send each (alpha, beta) rule
_RULE_BITS = (_golomb_bits(np.arange(MAX_BETA + 1), BETA_ORDER)[:, None]
              + _golomb_bits(np.arange(SCALES), ALPHA_ORDER)[None, :])


@functools.lru_cache(maxsize=16)  # one alphabet a blob; a daemon meets many, each table is levels x 64 x 17
def _bits_stack(levels: int, peaks: tuple[int, ...]) -> np.ndarray:
    """(peaks, levels, SCALES): about what a residual of size d costs at scale s under each peak
    (two-sided, untruncated), transposed for a matrix product."""
    stack = []
    for peak in peaks:
        rows = decay_rows(levels)[:, :levels].copy()
        rows[:, 0] *= PEAKS[peak]
        stack.append(-np.log2(rows / (2 * rows.sum(axis=1, keepdims=True) - PEAKS[peak])).T)
    return np.stack(stack)


def _fit_scale_rule(residual: np.ndarray, buckets: np.ndarray, levels: int, peaks=(0,),
                    rule_bits: np.ndarray | None = None, peak_bits: np.ndarray | None = None
                    ) -> tuple[int, int, int, float]:
    """(alpha, beta, peak) minimising the estimated code length of the residuals, and that length in bits;
    plus, where given (coder 6 on), the bits that send the rule (``rule_bits[beta, alpha]``) and the peak."""
    dist = np.minimum(np.abs(residual), levels - 1)
    hist = np.bincount(buckets * levels + dist, minlength=BUCKETS * levels).reshape(BUCKETS, levels)
    used = np.flatnonzero(hist.any(axis=1))  # empty buckets add nothing to any rule's cost
    cost = hist[used] @ _bits_stack(levels, peaks)  # (peaks, used buckets, SCALES)
    index = _RULE_SCALES[:, :, used] + np.arange(len(used)) * SCALES
    totals = cost.reshape(len(peaks), -1)[:, index].sum(axis=3)  # (peak, beta, alpha)
    if rule_bits is not None:
        totals = totals + rule_bits[None] + np.asarray(peak_bits)[list(peaks)][:, None, None]
    p, beta, alpha = np.unravel_index(int(np.argmin(totals)), totals.shape)
    return int(alpha), int(beta), peaks[p], float(totals[p, beta, alpha])


def _side_model() -> SideModel:
    """Coder 7's models, each starting from the shape of coder 6's code for its field."""
    return SideModel(_golomb_bits(np.arange(SCALES), ALPHA_ORDER), _golomb_bits(np.arange(MAX_BETA + 1), BETA_ORDER),
                     1 + _PEAK_EXTRA_BITS)


def _pack_group(weights: np.ndarray, alpha: int, beta: int) -> bytes:
    out = bytearray()
    for w in weights:
        out += _varint(zigzag(int(w)))
    out += bytes([alpha, beta])
    return bytes(out)


def _unpack_group(side: bytes, offset: int, count: int) -> tuple[np.ndarray, int, int, int]:
    weights = []
    for _ in range(count):
        z, offset = _read_varint(side, offset)
        weights.append(unzigzag(z))
    if offset + 2 > len(side):
        raise EntropyError("side information truncated")
    alpha, beta = side[offset], side[offset + 1]
    if alpha >= SCALES or beta > MAX_BETA:
        raise EntropyError("side information holds an invalid scale rule")
    return np.array(weights, np.int64), alpha, beta, offset + 2


def _write_group(bits: BitWriter, weights: np.ndarray, shift: int, alpha: int, beta: int,
                 escape: bool = False, peak: int = 0, peaked: bool = False, compact: bool = False) -> None:
    if compact:  # coder 6: one bit says whether weights follow
        bits.write(int(weights.any()), 1)
        if weights.any():
            _write_weights(bits, weights, shift)
        bits.write_golomb(alpha, ALPHA_ORDER)
        bits.write_golomb(beta, BETA_ORDER)
    else:
        if escape and not weights.any():
            bits.write(NO_PREDICTION, SHIFT_BITS)
        else:
            _write_weights(bits, weights, shift)
        bits.write(alpha, SCALE_RULE_BITS)
        bits.write(beta, SCALE_RULE_BITS)
    if peaked:
        bits.write(int(peak > 0), 1)
        if peak:
            bits.write(peak - 1, PEAK_BITS)


def _write_weights(bits: BitWriter, weights: np.ndarray, shift: int) -> None:
    bits.write(shift, SHIFT_BITS)
    for w in weights:
        bits.write_signed_golomb(int(w) >> shift, GOLOMB_ORDER)


def _read_group(bits: BitReader, count: int, escape: bool = False, peaked: bool = False, compact: bool = False
                ) -> tuple[np.ndarray, int, int, int]:
    if compact:
        weights = _read_weights(bits, count) if bits.read(1) else [0] * count
        alpha, beta = bits.read_golomb(ALPHA_ORDER), bits.read_golomb(BETA_ORDER)
    else:
        shift = bits.read(SHIFT_BITS)
        weights = [0] * count if escape and shift == NO_PREDICTION else _read_weights(bits, count, shift)
        alpha, beta = bits.read(SCALE_RULE_BITS), bits.read(SCALE_RULE_BITS)
    if alpha >= SCALES or beta > MAX_BETA:
        raise EntropyError("side information holds an invalid scale rule")
    peak = bits.read(PEAK_BITS) + 1 if peaked and bits.read(1) else 0
    return np.array(weights, np.int64), alpha, beta, peak


def _read_weights(bits: BitReader, count: int, shift: int | None = None) -> list[int]:
    shift = bits.read(SHIFT_BITS) if shift is None else shift
    if shift > MAX_SHIFT:
        raise EntropyError("side information holds an invalid weight precision")
    weights = [bits.read_signed_golomb(GOLOMB_ORDER) << shift for _ in range(count)]
    if any(abs(w) > WEIGHT_LIMIT for w in weights):
        raise EntropyError("side information holds an out-of-range weight")
    return weights


def _varint(value: int) -> bytes:
    return encode_varint(value)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    return read_varint(data, offset, EntropyError)
