import numpy as np
import pytest
import torch

from sdfs.codec import entropy
from sdfs.codec.quant import UniformQuantizer


@pytest.fixture(scope="module")
def real_symbols(taesd, kodak_crop):
    x = torch.from_numpy(kodak_crop.rgb().copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    z = taesd.encode(x)[0].numpy()
    return {bits: UniformQuantizer(bits).quantize(z) for bits in (3, 5, 8)}


@pytest.mark.parametrize("bits", [3, 5, 8])
def test_context_coder_roundtrips_and_beats_lzma(real_symbols, bits):
    q = real_symbols[bits]
    data = entropy.encode(q.symbols, q.levels)
    assert np.array_equal(entropy.decode(data, q.symbols.shape, q.levels), q.symbols)
    assert len(data) < len(entropy.encode(q.symbols, q.levels, entropy.LZMA))


@pytest.mark.parametrize("shape", [(1, 1, 1), (4, 1, 7), (3, 5, 1), (16, 3, 3), (1, 40, 33)])
def test_odd_shapes_and_alphabets(shape):
    rng = np.random.default_rng(0)
    for levels in (2, 17, 256, 4096):
        symbols = rng.integers(0, levels, shape).astype(np.int32)
        for coder in (entropy.CONTEXT, entropy.LZMA):
            data = entropy.encode(symbols, levels, coder)
            assert np.array_equal(entropy.decode(data, shape, levels, coder), symbols)


def test_constant_plane_costs_almost_nothing():
    symbols = np.full((4, 64, 64), 9, np.int32)
    assert len(entropy.encode(symbols, 32)) * 8 < 0.25 * symbols.size


def test_out_of_range_symbols_are_refused():
    with pytest.raises(entropy.EntropyError):
        entropy.encode(np.array([[[32]]]), 32)


def test_garbage_payload_raises_entropy_error_or_decodes_in_range():
    rng = np.random.default_rng(1)
    for n in range(0, 64, 7):
        data = rng.bytes(n)
        try:
            out = entropy.decode(data, (4, 6, 6), 32)
        except entropy.EntropyError:
            continue
        assert out.shape == (4, 6, 6) and out.min() >= 0 and out.max() < 32
