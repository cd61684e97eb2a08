import numpy as np
import pytest

from sdfs.codec.quant import PaletteQuantizer, QuantError, QuantizedLatent, UniformQuantizer


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
    kind, parsed, table = QuantizedLatent.parse_params(q.params_bytes(), 4)
    assert parsed == levels and np.array_equal(table, q.table)


def test_params_roundtrip():
    z = latent()
    for q in (UniformQuantizer(4).quantize(z), PaletteQuantizer(32).quantize(z)):
        kind, levels, table = QuantizedLatent.parse_params(q.params_bytes(), 4)
        assert (kind, levels) == (q.kind, q.levels) and np.array_equal(table, q.table)
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
