"""Encode and decode cost per megapixel on the CPU and, where there is one, the GPU, in one run.

    SDFS_SHARED=../shared HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 \
        .venv/bin/python benchmarks/device_cost.py [--efforts 0,1,2,3] [--cpu-efforts 0] \
        [--model madebyollin/taesd --levels 32]

For each device: the codec (the default model at its family's default rate, or the given model and levels)
encodes and decodes kodim01 alone and the first 8 Kodak images as one batch (best of 3, model
loaded and warmed up), then encodes kodim01 at each encoder effort. On a GPU it also runs the
float32 model, to show what float16 costs in quality.
Prints seconds per megapixel per step and the ratio of each device to the CPU.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from sdfs.codec import DEFAULT_MODEL, Codec, CodecConfig, load_model, read_image
from sdfs.metrics import psnr

SHARED = Path(os.environ.get("SDFS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
KODAK = SHARED / "data" / "kodak"


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(device: str, dtype: torch.dtype | None, efforts: list[int], images: list, runs: int,
            model_name: str, levels: int | None) -> dict:
    model = load_model(model_name, device=device, dtype=dtype)
    codec = Codec(model, CodecConfig(levels=levels))
    one, batch = images[:1], images
    mp_one = one[0].width * one[0].height / 1e6
    mp_batch = sum(i.width * i.height for i in batch) / 1e6
    blobs = codec.encode_batch(batch)
    codec.decode_batch(blobs)  # warm-up: kernels chosen, memory allocated
    row = {
        "encode": best_of(runs, lambda: codec.encode_batch(one)) / mp_one,
        "decode": best_of(runs, lambda: codec.decode_batch(blobs[:1])) / mp_one,
        "encode, batch of 8": best_of(runs, lambda: codec.encode_batch(batch)) / mp_batch,
        "decode, batch of 8": best_of(runs, lambda: codec.decode_batch(blobs)) / mp_batch,
        "psnr": float(np.mean([psnr(i.rgb(), d.rgb()) for i, d in zip(batch, codec.decode_batch(blobs))])),
        "blobs": blobs,
        "levels": codec.quantizer.levels,
    }
    for effort in efforts:
        refined = Codec(model, CodecConfig(levels=levels, effort=effort))
        row[f"encode, effort {effort}"] = best_of(1 if effort else runs, lambda c=refined: c.encode_batch(one)) / mp_one
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--efforts", default="1,2,3", help="encoder efforts timed on the GPU")
    parser.add_argument("--cpu-efforts", default="", help="encoder efforts timed on the CPU (slow: ~100 s/MP each)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--levels", type=int, help="levels per latent value (default: the family's, codec.DEFAULT_LEVELS)")
    args = parser.parse_args()
    parse = lambda text: [int(e) for e in text.split(",") if e]
    images = [read_image(p) for p in sorted(KODAK.glob("*.png"))[:8]]
    setting = (args.model, args.levels)
    columns = {"CPU": measure("cpu", None, parse(args.cpu_efforts), images, args.runs, *setting)}
    if torch.cuda.is_available():
        columns["GPU fp16"] = measure("cuda", torch.float16, parse(args.efforts), images, args.runs, *setting)
        columns["GPU fp32"] = measure("cuda", torch.float32, [], images, args.runs, *setting)
        name = torch.cuda.get_device_name()
    else:
        name = "no GPU"
    rate = f"{columns['CPU']['levels']} levels" + ("" if args.levels else " (its family's default)")
    print(f"seconds per megapixel, {args.model} {rate}, Kodak 768x512; CPU: {os.cpu_count()} cores "
          f"(torch {torch.get_num_threads()} threads); GPU: {name}")
    names = list(columns)
    steps = [k for k in dict.fromkeys(k for c in columns.values() for k in c) if k not in ("psnr", "blobs", "levels")]
    print(f"{'step':28s}" + "".join(f"{n:>12s}" for n in names) + "".join(f"{'CPU/' + n:>14s}" for n in names[1:]))
    for step in steps:
        cells = [columns[n].get(step) for n in names]
        line = f"{step:28s}" + "".join(f"{c:12.4f}" if c is not None else f"{'-':>12s}" for c in cells)
        ratios = [cells[0] / c if c and cells[0] else None for c in cells[1:]]
        print(line + "".join(f"{r:13.1f}x" if r else f"{'-':>14s}" for r in ratios))
    print("PSNR of the 8 images decoded: " + ", ".join(f"{n} {columns[n]['psnr']:.3f} dB" for n in names))
    if "GPU fp16" in columns:
        same = sum(a == b for a, b in zip(columns["CPU"]["blobs"], columns["GPU fp16"]["blobs"]))
        print(f"blobs identical between CPU and GPU fp16 encodes: {same}/{len(images)}")


if __name__ == "__main__":
    main()
