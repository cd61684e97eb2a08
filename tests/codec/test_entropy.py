import numpy as np
import pytest
import torch

from sdfs.codec import entropy, read_image
from sdfs.codec.quant import DeepHaarQuantizer, UniformQuantizer
from sdfs.codec.varint import read_varint
from tests.conftest import KODAK


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
        for coder in (entropy.CONTEXT, entropy.CONTEXT_V6, entropy.CONTEXT_V5, entropy.CONTEXT_V4, entropy.CONTEXT_V3,
                      entropy.CONTEXT_V1, entropy.LZMA):
            data = entropy.encode(symbols, levels, coder)
            assert np.array_equal(entropy.decode(data, shape, levels, coder), symbols)


@pytest.mark.parametrize("bits", [3, 5])
def test_lean_side_information_codes_the_same_symbols_in_fewer_bytes(real_symbols, bits):
    q = real_symbols[bits]
    lean, v1 = (entropy.encode(q.symbols, q.levels, coder) for coder in (entropy.CONTEXT, entropy.CONTEXT_V1))
    assert np.array_equal(entropy.decode(v1, q.symbols.shape, q.levels, entropy.CONTEXT_V1), q.symbols)
    side = [read_varint(data, 0, entropy.EntropyError)[0] for data in (lean, v1)]
    assert side[0] < 0.75 * side[1] and len(lean) < len(v1)


def test_a_smooth_plane_codes_its_first_quarter_as_a_checkerboard_of_its_own():
    rng = np.random.default_rng(2)
    smooth = np.kron(rng.normal(size=(1, 9, 13)), np.ones((8, 8)))[:, :64, :96]
    smooth = sum(np.roll(smooth, (dy, dx), axis=(1, 2)) for dy in range(-3, 4) for dx in range(-3, 4)) / 49
    plane = np.clip(np.rint((smooth - smooth.min()) / np.ptp(smooth) * 63), 0, 63).astype(np.int32)
    symbols = np.concatenate([plane, rng.integers(30, 34, plane.shape)])  # and a noisy plane after it
    lean, v1 = (entropy.encode(symbols, 64, coder) for coder in (entropy.CONTEXT_V6, entropy.CONTEXT_V1))
    assert np.array_equal(entropy.decode(lean, symbols.shape, 64, entropy.CONTEXT_V6), symbols)
    _, start = read_varint(lean, 0, entropy.EntropyError)
    assert (lean[start] >> 6) & 3 == 1  # the first plane's flags in coder 6's bit stream: not flat, split
    alone = [len(entropy.encode(plane, 64, coder)) for coder in (entropy.CONTEXT, entropy.CONTEXT_V1)]
    assert alone[0] < 0.85 * alone[1] and len(lean) < len(v1)


def test_groups_without_prediction_send_no_weights():
    """Planes of centred noise (like sd3's Haar detail bands) need no predictor: coder 4 says so in
    four bits a group where coder 3 sent every zero weight; the symbols' code is the same."""
    rng = np.random.default_rng(3)
    symbols = np.clip(np.rint(rng.laplace(16, 1.5, (24, 16, 24))), 0, 32).astype(np.int32)
    lean, v3 = (entropy.encode(symbols, 33, coder) for coder in (entropy.CONTEXT_V4, entropy.CONTEXT_V3))
    assert np.array_equal(entropy.decode(lean, symbols.shape, 33, entropy.CONTEXT_V4), symbols)
    assert np.array_equal(entropy.decode(v3, symbols.shape, 33, entropy.CONTEXT_V3), symbols)
    side = [read_varint(data, 0, entropy.EntropyError)[0] for data in (lean, v3)]
    assert side[0] < 0.6 * side[1] and len(lean) < len(v3), (side, len(lean), len(v3))
    with pytest.raises(entropy.EntropyError, match="precision"):  # coder 3 never had the escape
        entropy.decode(lean, symbols.shape, 33, entropy.CONTEXT_V3)


def test_a_spike_at_the_prediction_is_coded_with_a_peak():
    """sd3's detail bands at few levels are mostly exact zeros with Laplace tails: coder 5's peak
    lifts the probability of the predicted value where one Laplace would pay for it in its tails."""
    rng = np.random.default_rng(4)
    tails = np.rint(rng.laplace(0, 2.0, (16, 16, 24)))
    symbols = (np.where(rng.random(tails.shape) < 0.85, 0, tails) + 8).clip(0, 16).astype(np.int32)
    peaked, plain = (entropy.encode(symbols, 17, coder) for coder in (entropy.CONTEXT_V5, entropy.CONTEXT_V4))
    assert np.array_equal(entropy.decode(peaked, symbols.shape, 17, entropy.CONTEXT_V5), symbols)
    assert np.array_equal(entropy.decode(plain, symbols.shape, 17, entropy.CONTEXT_V4), symbols)
    assert len(peaked) < 0.85 * len(plain), (len(peaked), len(plain))
    try:  # coder 4 reads the peaks as other fields
        misread = entropy.decode(peaked, symbols.shape, 17, entropy.CONTEXT_V4)
    except entropy.EntropyError:
        misread = None
    assert misread is None or not np.array_equal(misread, symbols)


@pytest.fixture(scope="module")
def sd3_bands(taesd3):
    """sd3's Haar bands of kodim23's centre 384 px at 3 levels, rounded as the codec rounds them."""
    pixels = np.ascontiguousarray(read_image(KODAK / "kodim23.png").pixels[64:448, 192:576])
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1
    return DeepHaarQuantizer(levels=3).quantize(taesd3.encode(x)[0].numpy())


def assert_misread(data: bytes, q, coder: int) -> None:
    """An older coder refuses a newer coder's payload or reads other symbols from it."""
    try:
        misread = entropy.decode(data, q.symbols.shape, q.levels, coder)
    except entropy.EntropyError:
        return
    assert not np.array_equal(misread, q.symbols)


def test_coder_6_sends_about_a_third_of_the_side_information_of_coder_5(sd3_bands):
    """At few levels coder 5's side information was a sixth of an sd3 blob, mostly fixed-width fields: coder 6 flags
    flat planes, says in one bit whether a group has weights, and sends the scale rule in Exp-Golomb codes (priced
    when it is chosen). The symbols' code is about the same."""
    q = sd3_bands
    new, old = (entropy.encode(q.symbols, q.levels, coder) for coder in (entropy.CONTEXT_V6, entropy.CONTEXT_V5))
    assert np.array_equal(entropy.decode(new, q.symbols.shape, q.levels, entropy.CONTEXT_V6), q.symbols)
    assert np.array_equal(entropy.decode(old, q.symbols.shape, q.levels, entropy.CONTEXT_V5), q.symbols)
    side = [read_varint(data, 0, entropy.EntropyError)[0] for data in (new, old)]
    assert side[0] < 0.45 * side[1], side  # 237 bytes against 657
    assert len(old) - len(new) > 0.8 * (side[1] - side[0]), (len(new), len(old), side)
    assert_misread(new, q, entropy.CONTEXT_V5)  # coder 5 reads coder 6's fields as others


def test_flat_planes_cost_a_bit_each_in_coder_6():
    symbols = np.full((8, 24, 24), 16, np.int32)
    symbols[3, 5, 7] = 17
    data = entropy.encode(symbols, 33, entropy.CONTEXT_V6)
    assert np.array_equal(entropy.decode(data, symbols.shape, 33, entropy.CONTEXT_V6), symbols)
    flat = entropy.encode(np.delete(symbols, 3, axis=0), 33, entropy.CONTEXT_V6)
    assert read_varint(flat, 0, entropy.EntropyError)[0] == 1  # seven bits: seven flat planes


def test_coder_7_codes_the_side_information_in_the_range_coder_and_learns_it(sd3_bands):
    """Coder 7 codes coder 6's fields with models that learn each blob's skew (most groups at 3 levels send
    alpha 0, no weights, a peak): only the weights stay in the bit stream (none here), and the payload shrinks by
    about half of coder 6's side information; the symbols' code is the same."""
    q = sd3_bands
    new, old = (entropy.encode(q.symbols, q.levels, coder) for coder in (entropy.CONTEXT, entropy.CONTEXT_V6))
    assert np.array_equal(entropy.decode(new, q.symbols.shape, q.levels), q.symbols)
    side = [read_varint(data, 0, entropy.EntropyError)[0] for data in (new, old)]
    assert side[0] < 0.3 * side[1], side
    assert len(old) - len(new) > 0.4 * side[1], (len(new), len(old), side)  # 122 bytes of 237
    assert_misread(new, q, entropy.CONTEXT_V6)  # coder 6 reads coder 7's fields as others


def test_flat_planes_cost_little_in_coder_7():
    flat = np.full((64, 24, 24), 16, np.int32)
    assert len(entropy.encode(flat, 33)) <= 1 + 8  # no side stream, one or two words of range code
    symbols = flat.copy()
    symbols[3, 5, 7] = 17
    assert np.array_equal(entropy.decode(entropy.encode(symbols, 33), symbols.shape, 33), symbols)


def test_constant_plane_costs_almost_nothing():
    symbols = np.full((4, 64, 64), 9, np.int32)
    assert len(entropy.encode(symbols, 32)) * 8 < 0.25 * symbols.size


def test_out_of_range_symbols_are_refused():
    with pytest.raises(entropy.EntropyError):
        entropy.encode(np.array([[[32]]]), 32)


@pytest.mark.parametrize("coder", [entropy.CONTEXT, entropy.CONTEXT_V6, entropy.CONTEXT_V5, entropy.CONTEXT_V4,
                                   entropy.CONTEXT_V3, entropy.CONTEXT_V1])
def test_garbage_payload_raises_entropy_error_or_decodes_in_range(coder):
    rng = np.random.default_rng(1)
    for n in range(0, 64, 7):
        data = rng.bytes(n)
        try:
            out = entropy.decode(data, (4, 6, 6), 32, coder)
        except entropy.EntropyError:
            continue
        assert out.shape == (4, 6, 6) and out.min() >= 0 and out.max() < 32
