"""The blob parser refuses every malformed or forged input with ContainerError: no crash, no hang."""

import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdfs.codec import Codec, CodecConfig, CodecError
from sdfs.codec.container import MAGIC, READABLE, REGISTERED_NAMES, Blob, ContainerError
from sdfs.codec.models import FAMILIES, TUNED_DECODERS, TUNED_ENCODERS


def sample_blob(**overrides) -> Blob:
    fields = dict(family="sd1", encoder="madebyollin/taesd", width=100, height=60, mode="RGB", latent_height=8,
                  latent_width=13, channels=4, quantizer=b"\x01\x20\x00\x04\x00" + b"\x00" * 16, coder=1,
                  payload=b"\x01\x02\x03", icc=b"icc", exif=b"Exif")
    fields.update(overrides)
    return Blob(**fields)


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_roundtrip_keeps_every_field():
    blob = sample_blob(alpha=b"\x89PNG", extras={"k": "v"}, restoration=bytes(24), coded_width=50, coded_height=30,
                       latent_width=7, latent_height=4)
    assert Blob.from_bytes(blob.to_bytes()) == blob
    assert blob.coded_size == (50, 30) and sample_blob().coded_size == (100, 60)


def test_version_1_blobs_still_read():
    blob = sample_blob(family="sd3", encoder="madebyollin/taesd3+taesd3_encoder_sdfs_v7", channels=16,
                       decoder="taesd3_decoder_sdfs_v4", restoration=bytes(24), coded_width=50, coded_height=30)
    old = blob.to_bytes(version=1)
    assert old[4] == 1 and Blob.from_bytes(old) == blob
    assert old.count(b"taesd3_decoder_sdfs_v4") == 1


def test_version_2_codes_names_and_integers_compactly():
    """An sd3 blob's header: registered names as two bytes each, integers as varints."""
    blob = sample_blob(family="sd3", encoder="madebyollin/taesd3+taesd3_encoder_sdfs_v7", channels=16,
                       decoder="taesd3_decoder_sdfs_v4", width=768, height=512, latent_width=96, latent_height=64)
    new, old = blob.to_bytes(), blob.to_bytes(version=1)
    assert new[4] == max(READABLE) and Blob.from_bytes(new) == blob
    assert b"taesd" not in new
    assert len(old) - len(new) == (41 - 2) + (22 - 2) + (3 - 2) + 2 * 2 + 4 * 3  # 76 bytes
    unregistered = sample_blob(encoder="/models/vae_approx/taesd_encoder.safetensors")
    assert Blob.from_bytes(unregistered.to_bytes()).encoder == unregistered.encoder


def test_every_name_sdfs_writes_is_registered():
    """A new tuned encoder or decoder must be added to REGISTERED_NAMES (at the end), or its blobs carry its name
    as text."""
    written = {family.name for family in FAMILIES.values()}
    written |= {f"madebyollin/{family.vae_approx_prefix}" for family in FAMILIES.values()}
    written |= {f"madebyollin/{FAMILIES[name].vae_approx_prefix}+{file.removesuffix('.safetensors')}"
                for name, file in TUNED_ENCODERS.items()}
    written |= {file.removesuffix(".safetensors") for files in TUNED_DECODERS.values() for file in files}
    assert written <= set(REGISTERED_NAMES)
    assert len(set(REGISTERED_NAMES)) == len(REGISTERED_NAMES)


def test_forged_registered_names_and_integers_are_refused():
    body = sample_blob().to_bytes()[:-4]
    with pytest.raises(ContainerError, match="registered name 99"):
        Blob.from_bytes(with_crc(body.replace(b"\x01\x02\x00\x00", b"\x01\x02\x00\x63", 1)))
    for forged in (b"\x03\x05\xff\xff\xff\xff\x7f", b"\x03\x02\x64\x00"):  # width 2**35 - 1; 100 and a stray byte
        with pytest.raises(ContainerError, match="not a 32-bit varint"):
            Blob.from_bytes(with_crc(body.replace(b"\x03\x01\x64", forged, 1)))
    with pytest.raises(ContainerError, match="does not fit 32 bits"):
        sample_blob(width=1 << 32).to_bytes()
    with pytest.raises(ContainerError, match="cannot write blob version 9"):
        sample_blob().to_bytes(version=9)


@pytest.mark.parametrize("coded, message", [
    (dict(coded_width=50), "width but no height"),
    (dict(coded_width=200, coded_height=30), "not within image 100x60"),
    (dict(width=5000, height=5000, coded_width=2000, coded_height=1000), "does not fit image 2000x1000"),
])
def test_a_coded_size_that_cannot_be_is_refused(coded, message):
    with pytest.raises(ContainerError, match=message):
        Blob.from_bytes(sample_blob(**coded).to_bytes())


@pytest.mark.parametrize("data, message", [
    (b"", "too short"),
    (b"PNG\x1a\x01\x00\x00\x00\x00", "bad magic"),
    (MAGIC + b"\x09" + b"\x00" * 4, "version"),
    (MAGIC + b"\x01" + b"\x00" * 4, "checksum"),
])
def test_header_errors_are_named(data, message):
    with pytest.raises(ContainerError, match=message):
        Blob.from_bytes(data)


def test_checksum_catches_any_flipped_bit():
    data = bytearray(sample_blob().to_bytes())
    for i in range(5, len(data)):
        for bit in (0, 7):
            flipped = bytes(data[:i]) + bytes([data[i] ^ (1 << bit)]) + bytes(data[i + 1:])
            with pytest.raises(ContainerError):
                Blob.from_bytes(flipped)


def test_forged_sizes_and_lengths_are_refused():
    body = sample_blob().to_bytes()[:-4]
    with pytest.raises(ContainerError, match="past the end"):
        Blob.from_bytes(with_crc(body + b"\x0b\xff\xff\xff\x7f"))  # a 268 MB payload field that is not there
    with pytest.raises(ContainerError, match="implausible"):
        Blob.from_bytes(sample_blob(width=1 << 30).to_bytes())
    with pytest.raises(ContainerError, match="pixel limit"):
        Blob.from_bytes(sample_blob(width=40000, height=40000, latent_width=5000, latent_height=5000).to_bytes(),
                        max_pixels=10**8)
    with pytest.raises(ContainerError, match="twice"):
        Blob.from_bytes(with_crc(body + b"\x01\x03sd1"))
    with pytest.raises(ContainerError, match="unknown field"):
        Blob.from_bytes(with_crc(body + b"\x63\x00"))
    with pytest.raises(ContainerError, match="missing"):
        Blob.from_bytes(with_crc(MAGIC + b"\x01"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(data):
    try:
        Blob.from_bytes(data)
    except ContainerError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(READABLE), st.lists(st.tuples(st.integers(0, 20), st.binary(max_size=12)), max_size=16))
def test_forged_field_lists_with_valid_checksum(version, fields):
    body = bytearray(MAGIC + bytes([version]))
    for tag, value in fields:
        body += bytes([tag, len(value)]) + value
    try:
        Blob.from_bytes(with_crc(bytes(body)))
    except ContainerError:
        pass


@pytest.fixture(scope="module")
def small_codec(taesd):
    return Codec(taesd, CodecConfig(max_pixels=256 * 256))


@pytest.fixture(scope="module")
def real_blob(small_codec, kodak_crop):
    return small_codec.encode(kodak_crop)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_forged_blobs_through_the_codec_raise_codec_error(small_codec, real_blob, data):
    """Mutate fields of a real blob, re-sign it, and decode: a CodecError or an image, never anything else."""
    blob = Blob.from_bytes(real_blob)
    field = data.draw(st.sampled_from(["width", "height", "latent_height", "latent_width", "channels", "quantizer",
                                       "coder", "payload", "alpha", "family", "mode"]))
    if field in ("width", "height", "latent_height", "latent_width", "channels", "coder"):
        setattr(blob, field, data.draw(st.integers(0, 2**32 - 1)))
    elif field in ("quantizer", "payload", "alpha"):
        original = getattr(blob, field) or b""
        cut = data.draw(st.integers(0, len(original)))
        setattr(blob, field, original[:cut] + data.draw(st.binary(max_size=8)))
    elif field == "family":
        blob.family = data.draw(st.sampled_from(["sd3", "sdxl", "", "x" * 300]))
    else:
        blob.mode = "L"
    try:
        encoded = blob.to_bytes()
    except (struct.error, KeyError, ContainerError):
        return  # not representable in the format at all
    try:
        image = small_codec.decode(encoded)
    except CodecError:
        return
    assert image.width * image.height <= 256 * 256
