"""The service's decode batching: readers waiting together share one decoder pass."""

from __future__ import annotations

import threading
import time

import numpy as np

from sdfs.codec import Codec, CodecError, ImageData, read_image
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
