"""Experiment: effort's refinement at a constant Adam step against the step decayed on a cosine.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python refine_schedule.py \
        --model madebyollin/taesd3 --levels 5 --images 01,03,05,08,13,15,19,21 --crop 192 --efforts 2,3,4

For each effort and each schedule (``sdfs.codec.optimize.STEP_DECAY``), encodes centre crops of
the given Kodak images with the model's default encoder and the restoration filter and prints mean
bpp, PSNR, SSIMULACRA2, the refinement's mean best loss, the step at which each crop's best state
was found, and the seconds the encodes took. docs/BENCHMARKS.md records the outcome.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from restoration_filter import SHARED  # run from benchmarks/

import sdfs.codec.optimize as optimize
from sdfs.bench import centre_crop, measure
from sdfs.codec import Codec, CodecConfig, ImageData, load_model, read_image

BEST_STEP: list[int] = []


def _record_best_step(minimise):
    """Wrap ``_minimise`` so each refinement's step of lowest loss is recorded."""
    def wrapped(variable, lr, steps, loss_fn, snapshot, between_steps=None):
        losses = []

        def loss():
            value = loss_fn()
            losses.append(float(value.detach()))
            return value

        result = minimise(variable, lr, steps, loss, snapshot, between_steps)
        BEST_STEP.append(int(np.argmin(losses)))
        return result
    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="madebyollin/taesd")
    parser.add_argument("--bits", type=int, default=5)
    parser.add_argument("--levels", type=int, help="levels per latent value (overrides --bits)")
    parser.add_argument("--images", default="01,03,05,08,13,15,19,21", help="Kodak image numbers")
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--efforts", default="2,3")
    parser.add_argument("--schedules", default="constant,cosine")
    args = parser.parse_args()
    optimize._minimise = _record_best_step(optimize._minimise)
    model = load_model(args.model)
    images = [ImageData(centre_crop(read_image(SHARED / "data" / "kodak" / f"kodim{n}.png").rgb(), args.crop))
              for n in args.images.split(",")]
    for effort in (int(e) for e in args.efforts.split(",")):
        for schedule in args.schedules.split(","):
            optimize.STEP_DECAY = schedule
            codec = Codec(model, CodecConfig(bits=args.bits, levels=args.levels, effort=effort))
            rows, losses, start = [], [], time.perf_counter()
            BEST_STEP.clear()
            for image in images:
                blob = codec.encode(image)
                losses.append(np.mean([r.loss_after for r in codec.last_reports]))
                scores = measure(image.pixels, codec.decode(blob).rgb(), ("psnr", "ssimulacra2"))
                rows.append((len(blob) * 8 / (image.width * image.height), scores["psnr"], scores["ssimulacra2"]))
            bpp, psnr, ssim2 = np.mean(rows, axis=0)
            print(f"effort {effort} {schedule:8s}: {bpp:.4f} bpp  {psnr:.3f} dB  SSIMULACRA2 {ssim2:.2f}  "
                  f"loss {np.mean(losses):.5f}  best at step {BEST_STEP}  {time.perf_counter() - start:.0f} s",
                  flush=True)


if __name__ == "__main__":
    main()
