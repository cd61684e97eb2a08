"""The service's device sharing: readers waiting together share one decoder pass, and a long
background encode hands the device to them between its refinement steps."""

from __future__ import annotations

import threading
import time

import numpy as np

from sdfs.codec import Codec, CodecConfig, CodecError, ImageData, read_image
from sdfs.service import DecodeBatcher, DeviceLock
from tests.conftest import KODAK


def test_waiting_decodes_run_as_one_batch_and_match_single_decodes(taesd):
    codec = Codec(taesd)
    pixels = read_image(KODAK / "kodim05.png").pixels
    blobs = [codec.encode(ImageData(np.ascontiguousarray(pixels[y:y + 128, x:x + 128])))
             for y, x in ((0, 0), (128, 128), (256, 256), (0, 384), (256, 512))]
    blobs.append(b"SDL\x1a not a blob")  # a corrupt file fails on its own, not its batch
    alone = [codec.decode(b).pixels for b in blobs[:-1]]
    device = DeviceLock()
    batcher = DecodeBatcher(codec, device)
    results: list = [None] * len(blobs)

    def read(i):
        try:
            results[i] = batcher.decode(blobs[i]).pixels
        except Exception as exc:  # noqa: BLE001 - checked below
            results[i] = exc

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(blobs))]
    with device.hold(interactive=False):  # the device is busy (an encode) while the readers arrive
        for t in threads:
            t.start()
        time.sleep(1.0)
    for t in threads:
        t.join()
    print(f"{len(blobs)} readers, {batcher.batches} decoder runs")
    # the first reader took what was pending when it got the decoder; the rest queued behind it
    assert batcher.decodes == len(blobs) and batcher.batches <= 2
    assert isinstance(results[-1], CodecError)
    for got, want in zip(results, alone):
        assert got.shape == want.shape and np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_a_read_does_not_wait_for_a_refining_encode(taesd, kodak_crop):
    encoder = Codec(taesd, CodecConfig(bits=5, effort=2))  # 30 refinement steps: seconds on a CPU
    device = DeviceLock()
    refining = threading.Event()

    def step():
        refining.set()
        device.yield_to_interactive()

    encoder.between_steps = step
    blob = Codec(taesd).encode(ImageData(np.ascontiguousarray(kodak_crop.pixels[:64, :64])))
    batcher = DecodeBatcher(Codec(taesd), device)

    def encode():
        with device.hold(interactive=False):  # as the service's encoder holds it for a batch
            encoder.encode(kodak_crop)

    worker = threading.Thread(target=encode)
    worker.start()
    assert refining.wait(60)
    started = time.perf_counter()
    decoded = batcher.decode(blob)
    waited = time.perf_counter() - started
    still_encoding = worker.is_alive()
    worker.join()
    print(f"read served in {waited:.2f} s during a refining encode")
    assert decoded.pixels.shape == (64, 64, 3)
    assert still_encoding, "the read waited for the whole encode"
    assert encoder.last_reports[0].steps == 30


def test_only_the_holder_can_yield_the_device():
    device = DeviceLock()
    with device.hold(interactive=False):
        other = threading.Thread(target=device.yield_to_interactive)  # holds nothing: must not free it
        waiting = threading.Thread(target=lambda: device.hold(interactive=True).__enter__())
        waiting.start()
        time.sleep(0.2)
        other.start()
        other.join()
        time.sleep(0.2)
        assert waiting.is_alive(), "an interactive hold got the device while the encoder held it"
    waiting.join(5)
    assert not waiting.is_alive()
