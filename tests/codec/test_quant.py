import struct

import numpy as np
import pytest
import torch

from sdfs.codec import quant, wavelet
from sdfs.codec.quant import (
    DEEP_HAAR,
    HAAR,
    MAX_ROTATED_SYMBOLS,
    NESTED_HAAR,
    DeepHaarQuantizer,
    NestedHaarQuantizer,
    PaletteQuantizer,
    QuantError,
    QuantizedLatent,
    RotatedHaarQuantizer,
    RotatedQuantizer,
    UniformQuantizer,
    haar_latent,
    symbol_shape,
    uniform_grid,
)
from sdfs.codec.rotations import rotation_matrix
from sdfs.codec.varint import encode_varint


def latent(seed=0, shape=(4, 12, 16)):
    return np.random.default_rng(seed).normal(0, 1.2, shape).astype(np.float32)


@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_uniform_error_is_within_half_a_step(bits):
    z = latent()
    q = UniformQuantizer(bits).quantize(z)
    assert q.symbols.shape == z.shape and q.symbols.max() < 2**bits and q.symbols.min() >= 0
    step = (z.max(axis=(1, 2)) - z.min(axis=(1, 2))) / (2**bits - 1)
    err = np.abs(q.dequantize() - z).max(axis=(1, 2))
    assert (err <= step * 0.5 + 2e-2 * step + 1e-3).all()


def test_uniform_bits_out_of_range():
    for bits in (1, 9):
        with pytest.raises(QuantError):
            UniformQuantizer(bits)
    for levels in (1, 257):
        with pytest.raises(QuantError):
            UniformQuantizer(levels=levels)


@pytest.mark.parametrize("levels", [2, 3, 5, 24])
def test_any_number_of_levels_spans_each_channels_range(levels):
    z = latent()
    q = UniformQuantizer(bits=8, levels=levels).quantize(z)  # levels overrides bits
    assert q.levels == levels and set(np.unique(q.symbols)) <= set(range(levels))
    assert (q.symbols.min(axis=(1, 2)) == 0).all() and (q.symbols.max(axis=(1, 2)) == levels - 1).all()
    step = (z.max(axis=(1, 2)) - z.min(axis=(1, 2))) / (levels - 1)
    assert (np.abs(q.dequantize() - z).max(axis=(1, 2)) <= step * 0.52 + 1e-3).all()
    parsed = QuantizedLatent.parse_params(q.params_bytes(), 4)
    assert parsed.levels == levels and np.array_equal(parsed.table, q.table)


def test_params_roundtrip():
    z = latent()
    for q in (UniformQuantizer(4).quantize(z), PaletteQuantizer(32).quantize(z)):
        parsed = QuantizedLatent.parse_params(q.params_bytes(), 4)
        assert (parsed.kind, parsed.levels) == (q.kind, q.levels) and np.array_equal(parsed.table, q.table)
    with pytest.raises(QuantError):
        QuantizedLatent.parse_params(q.params_bytes()[:-1], 4)
    with pytest.raises(QuantError):
        QuantizedLatent.parse_params(q.params_bytes(), 16)


def test_palette_dithering_preserves_local_means():
    z = latent(1, (4, 32, 32))
    dithered = PaletteQuantizer(16, dither=True).quantize(z).dequantize()
    nearest = PaletteQuantizer(16, dither=False).quantize(z).dequantize()
    assert dithered.shape == z.shape
    # error diffusion keeps 4x4 block averages closer to the original than nearest-entry mapping
    def block_err(x):
        return np.abs((x - z).reshape(4, 8, 4, 8, 4).mean(axis=(2, 4))).mean()
    assert block_err(dithered) < block_err(nearest)


def test_palette_is_deterministic_and_small_images_work():
    z = latent(2)
    a, b = PaletteQuantizer(256).quantize(z), PaletteQuantizer(256).quantize(z)
    assert np.array_equal(a.symbols, b.symbols) and np.array_equal(a.table, b.table)
    tiny = PaletteQuantizer(256).quantize(latent(3, (4, 1, 1)))
    assert tiny.symbols.shape == (1, 1, 1)


def correlated_latent(seed=0, shape=(16, 12, 16)):
    """Sixteen channels that share most of their variance, like SD3's."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, 1.0, (3, *shape[1:]))
    mix = rng.normal(0, 0.5, (shape[0], 3))
    return (np.einsum("cs,shw->chw", mix, shared) + rng.normal(0, 0.3, shape)).astype(np.float32)


@pytest.mark.parametrize("levels", [4, 6, 32, 256])
def test_rotated_quantiser_gives_strong_components_finer_steps_and_roundtrips(levels):
    z = correlated_latent()
    q = RotatedQuantizer(levels=levels, rotation=1).quantize(z)
    low, step = uniform_grid(q.table, q.levels)
    components = (rotation_matrix(1, 16) @ z.reshape(16, -1)).reshape(z.shape)
    spans = components.max(axis=(1, 2)) - components.min(axis=(1, 2))
    assert step[np.argmax(spans)] < step[np.argmin(spans)]
    channel_step = (z.max(axis=(1, 2)) - z.min(axis=(1, 2))).mean() / (levels - 1)
    if levels < 256:  # the steps average the channels' step at these levels
        assert np.exp(np.log(step).mean()) == pytest.approx(channel_step, rel=0.01)
    assert 2 <= q.levels <= MAX_ROTATED_SYMBOLS and 0 <= q.symbols.min() and q.symbols.max() < q.levels
    decoded = (rotation_matrix(1, 16) @ q.dequantize().reshape(16, -1)).reshape(z.shape)
    assert (np.abs(decoded - components).max(axis=(1, 2)) <= step * 0.52 + 1e-2).all()
    parsed = QuantizedLatent.parse_params(q.params_bytes(), 16)
    assert (parsed.kind, parsed.levels, parsed.rotation, parsed.requested_levels) == (q.kind, q.levels, 1, levels)
    parsed.symbols = q.symbols
    assert np.array_equal(parsed.dequantize(), q.dequantize())


@pytest.mark.parametrize("shape", [(16, 12, 16), (16, 7, 9), (16, 1, 5)])
def test_haar_transform_inverts_on_any_size(shape):
    z = correlated_latent(shape=shape).astype(np.float64)
    bands = wavelet.forward(z)
    assert bands.shape == (16, 4, *wavelet.band_size(*shape[1:]))
    assert np.allclose(wavelet.inverse(bands, *shape[1:]), z)
    assert np.allclose(wavelet.inverse(torch.from_numpy(bands), *shape[1:]).numpy(), z)
    assert np.allclose(wavelet.forward(torch.from_numpy(z)).numpy(), bands)
    assert np.allclose((bands ** 2).sum(), (np.pad(z, ((0, 0), (0, shape[1] % 2), (0, shape[2] % 2)), "edge") ** 2).sum())


@pytest.mark.parametrize("shape", [(3, 6, 8), (2, 7, 9), (1, 1, 5), (2, 3, 1)])
def test_the_nested_level_is_its_own_inverse(shape):
    ll = correlated_latent(shape=(16, *shape[1:])).astype(np.float64)[:shape[0]]
    nested = wavelet.nest(ll)
    assert np.allclose(wavelet.nest(nested), ll) and np.allclose((nested ** 2).sum(), (ll ** 2).sum())
    assert np.allclose(wavelet.nest(torch.from_numpy(ll)).numpy(), nested)
    mask = wavelet.averages_mask(*shape[1:])
    h2, w2 = shape[1] // 2 * 2, shape[2] // 2 * 2
    assert mask.sum() == (h2 // 2) * (w2 // 2) + shape[1] * shape[2] - h2 * w2  # LL2 and the untouched edge
    assert np.allclose(nested[:, h2:], ll[:, h2:]) and np.allclose(nested[:, :, w2:], ll[:, :, w2:])
    if h2 and w2:  # LL2 is twice the block's mean
        assert np.allclose(nested[:, 0, 0], ll[:, :2, :2].sum(axis=(1, 2)) / 2)
        assert mask[0, 0] and not mask[0, 1] and not mask[1, 0] and not mask[1, 1]


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 12, 16), (2, 7, 9), (1, 6, 10), (1, 1, 5), (2, 3, 1)])
def test_the_third_level_nests_in_ll2_and_unnests(shape):
    ll = correlated_latent(shape=(16, *shape[1:])).astype(np.float64)[:shape[0]]
    once, twice = wavelet.nest(ll), wavelet.nest(ll, 2)
    assert np.allclose(wavelet.unnest(twice, 2), ll) and np.allclose((twice ** 2).sum(), (ll ** 2).sum())
    assert np.allclose(wavelet.nest(torch.from_numpy(ll), 2).numpy(), twice)
    assert np.allclose(wavelet.unnest(torch.from_numpy(twice), 2).numpy(), ll)
    assert np.allclose(wavelet.unnest(once), ll)  # one level: unnest is nest
    h2, w2 = shape[1] // 2 * 2, shape[2] // 2 * 2
    grid = (slice(None), slice(0, h2, 2), slice(0, w2, 2))
    assert np.allclose(twice[grid], wavelet.nest(once[grid]))  # LL2's grid nested once more
    outside = np.ones(ll.shape[1:], bool)
    outside[grid[1:]] = False
    assert np.allclose(twice[:, outside], once[:, outside])  # the first level's details stay
    mask = wavelet.averages_mask(*shape[1:], 2)
    assert (mask[grid[1:]] == wavelet.averages_mask(h2 // 2, w2 // 2)).all()
    assert (mask[outside] == wavelet.averages_mask(*shape[1:])[outside]).all()
    if h2 >= 4 and w2 >= 4:  # LL3 is the 4x4 block's mean, four times
        assert np.allclose(twice[:, 0, 0], ll[:, :4, :4].sum(axis=(1, 2)) / 4)
        assert mask[0, 0] and not mask[0, 2] and not mask[2, 0] and not mask[2, 2]


@pytest.mark.parametrize("levels,shape", [(4, (16, 12, 16)), (6, (16, 7, 9)), (32, (16, 12, 16)), (256, (16, 5, 3))])
@pytest.mark.parametrize("quantizer, kind", [(RotatedHaarQuantizer, HAAR), (NestedHaarQuantizer, NESTED_HAAR),
                                             (DeepHaarQuantizer, DEEP_HAAR)])
def test_rotated_haar_quantiser_rounds_bands_and_roundtrips(levels, shape, quantizer, kind, monkeypatch):
    monkeypatch.setattr(quant, "MIN_HAAR_CELLS", 1)
    z = correlated_latent(shape=shape)
    q = quantizer(levels=levels, rotation=1).quantize(z)
    assert q.kind == kind and q.symbols.shape == symbol_shape(kind, 16, *shape[1:])
    assert 0 <= q.symbols.min() and q.symbols.max() < q.levels and q.requested_levels == levels
    steps = q.table.astype(np.float32)
    assert np.allclose(steps[:, 1], steps[:, 0] * 1.2, rtol=2e-3)  # details on a coarser grid
    components = (rotation_matrix(1, 16) @ z.reshape(16, -1)).reshape(z.shape)
    decoded = (rotation_matrix(1, 16) @ q.dequantize().reshape(16, -1)).reshape(z.shape)
    # one cell's error: half of LL's error plus half of each detail band's half step; LL's error is
    # half a step, or with the nested level half of each of its four coefficients' half steps
    # (each nested level adds half of its three details' half steps to half its average's error)
    ll_error = {HAAR: steps[:, 0] / 2, NESTED_HAAR: steps[:, 0], DEEP_HAAR: 1.25 * steps[:, 0]}[kind]
    bound = (ll_error + 3 * steps[:, 1] / 2) / 2 + 1e-2
    assert (np.abs(decoded - components).max(axis=(1, 2)) <= bound).all()
    parsed = QuantizedLatent.parse_params(q.params_bytes(), 16, shape[1:])
    assert (parsed.kind, parsed.levels, parsed.rotation, parsed.requested_levels) == (kind, q.levels, 1, levels)
    parsed.symbols = q.symbols
    assert np.array_equal(parsed.dequantize(), q.dequantize())
    through_torch = haar_latent(torch.from_numpy(q.symbols).double(), q, torch).numpy()
    assert np.allclose(through_torch, q.dequantize(), atol=1e-4)


def test_small_latents_keep_rounding_cells():
    small = RotatedHaarQuantizer(levels=6, rotation=1).quantize(correlated_latent(shape=(16, 32, 32)))
    large = RotatedHaarQuantizer(levels=6, rotation=1).quantize(correlated_latent(shape=(16, 64, 96)))
    assert small.name == "rotated uniform" and large.name == "rotated haar"


def old_layout(q: QuantizedLatent) -> bytes:
    """A rotated Haar quantiser's parameters as blobs carried them before 2026-12-07."""
    head = struct.pack("<BHHBH", q.kind, q.levels, len(q.table), q.rotation, q.nominal_levels)
    return head + q.table.astype("<f2").tobytes() + q.centres.astype("<i2").tobytes()


def test_rotated_haar_parameters_are_compact_and_checked(monkeypatch):
    monkeypatch.setattr(quant, "MIN_HAAR_CELLS", 1)
    q = RotatedHaarQuantizer(levels=6, rotation=1).quantize(correlated_latent())
    compact, old = q.params_bytes(), old_layout(q)
    assert compact[0] == HAAR | quant.COMPACT and len(compact) < 0.6 * len(old), (len(compact), len(old))
    steps_at = 2 + sum(len(encode_varint(v)) for v in (q.levels, 16, q.nominal_levels))
    for data, step_at in ((compact, steps_at), (old, 8)):
        parsed = QuantizedLatent.parse_params(data, 16)
        assert np.array_equal(parsed.table, q.table) and np.array_equal(parsed.centres, q.centres)
        assert (parsed.kind, parsed.levels, parsed.nominal_levels) == (q.kind, q.levels, q.nominal_levels)
        with pytest.raises(QuantError, match="wrong length|truncated"):
            QuantizedLatent.parse_params(data[:-2], 16)
        bad = bytearray(data)
        bad[step_at:step_at + 2] = np.array([-1.0], "<f2").tobytes()
        with pytest.raises(QuantError, match="positive"):
            QuantizedLatent.parse_params(bytes(bad), 16)
    with pytest.raises(QuantError, match="compact quantiser kind"):
        QuantizedLatent.parse_params(bytes([quant.UNIFORM | quant.COMPACT]) + compact[1:], 16)


def test_rotated_parameters_name_a_rotation_this_sdfs_has():
    q = RotatedQuantizer(levels=6, rotation=1).quantize(correlated_latent())
    data = bytearray(q.params_bytes())
    with pytest.raises(QuantError):  # rotation 1 is 16x16
        QuantizedLatent.parse_params(bytes(data), 4)
    data[5] = 99
    with pytest.raises(QuantError, match="unknown to this sdfs"):
        QuantizedLatent.parse_params(bytes(data), 16)
