"""The GPU path (float16 TAESD on CUDA): runs only where CUDA is present, and must agree with the CPU."""

import numpy as np
import pytest
import torch

from sdfs.codec import Codec, CodecConfig, load_model
from sdfs.codec.images import ImageData, read_image
from tests.conftest import KODAK, psnr

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def gpu_model():
    return load_model("madebyollin/taesd", device="auto")


def test_auto_picks_the_gpu_in_float16(gpu_model):
    assert gpu_model.device.type == "cuda" and gpu_model.dtype == torch.float16


def test_gpu_decodes_what_the_cpu_wrote_and_the_other_way_round(taesd, gpu_model, kodak_crop):
    cpu, gpu = Codec(taesd), Codec(gpu_model)
    cpu_blob, gpu_blob = cpu.encode(kodak_crop), gpu.encode(kodak_crop)
    assert psnr(gpu.decode(cpu_blob).pixels, cpu.decode(cpu_blob).pixels) > 40
    assert psnr(cpu.decode(gpu_blob).pixels, kodak_crop.pixels) > psnr(cpu.decode(cpu_blob).pixels,
                                                                       kodak_crop.pixels) - 0.3


def test_gpu_batches_match_single_decodes(gpu_model, kodak_crop):
    codec = Codec(gpu_model)
    flipped = ImageData(np.ascontiguousarray(kodak_crop.pixels[::-1]))
    blobs = codec.encode_batch([kodak_crop, flipped])
    for blob, image in zip(blobs, codec.decode_batch(blobs)):
        assert np.abs(image.pixels.astype(int) - codec.decode(blob).pixels.astype(int)).max() <= 1


def test_effort_refines_on_the_gpu(gpu_model, kodak_crop):
    plain, refined = Codec(gpu_model), Codec(gpu_model, CodecConfig(effort=1))
    gain = (psnr(refined.decode(refined.encode(kodak_crop)).pixels, kodak_crop.pixels)
            - psnr(plain.decode(plain.encode(kodak_crop)).pixels, kodak_crop.pixels))
    assert gain > 0.5
    assert refined.encode(kodak_crop) == refined.encode(kodak_crop)  # deterministic on one device


def test_a_whole_photo_with_the_large_filter_decodes_alike_on_gpu_and_cpu(taesd, gpu_model):
    photo = read_image(KODAK / "kodim23.png")
    cpu, gpu = Codec(taesd), Codec(gpu_model)
    blob = gpu.encode(photo)
    assert Codec.info(blob).restoration == "5x5 cross-channel"
    assert psnr(gpu.decode(blob).pixels, cpu.decode(blob).pixels) > 40
    assert psnr(gpu.decode(blob).pixels, photo.pixels) > psnr(cpu.decode(cpu.encode(photo)).pixels, photo.pixels) - 0.3
