"""Experiment: sdfs's fine-tuned encoder against TAESD's own, the same decoder and settings.

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/tuned_encoder.py \
        --images 8 --bits 4,5 [--effort 0] [--crop 0] [--model madebyollin/taesd3] \
        [--weights FILE.safetensors [--extra-blocks N]]

For each bit depth, encodes the first ``--images`` Kodak images (or centre crops of ``--crop``
pixels) with TAESD's encoder and with the fine-tuned one (``--weights``: another candidate from
``finetune_encoder.py``; default the shipped weights), and prints mean bpp, PSNR and
SSIMULACRA2 of both. docs/BENCHMARKS.md records the outcome.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from finetune_encoder import add_blocks  # run from benchmarks/
from restoration_filter import SHARED, scores

from sdfs.bench import centre_crop
from sdfs.codec import Codec, CodecConfig, ImageData, load_model, read_image
from sdfs.codec.models import load_encoder_weights


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--bits", default="4,5")
    parser.add_argument("--effort", type=int, default=0)
    parser.add_argument("--crop", type=int, default=0)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--model", default="madebyollin/taesd", help="the TAESD the weights were tuned for")
    parser.add_argument("--extra-blocks", type=int, default=0, help="the blocks finetune_encoder.py inserted")
    args = parser.parse_args()
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]
    images = [ImageData(centre_crop(read_image(f).rgb(), args.crop)) for f in files]
    own = load_model(args.model, device="cpu", tuned_encoder=False)
    tuned = load_model(args.model, device="cpu")
    if args.extra_blocks:
        add_blocks(tuned.vae.encoder, args.extra_blocks)
    if args.weights:
        load_encoder_weights(tuned.vae.encoder, args.weights)
    print(f"{len(images)} Kodak images (crop {args.crop or 'none'}), effort {args.effort}, "
          f"{args.weights or tuned.encoder_name}: bpp / PSNR / SSIMULACRA2 / encode+decode s")
    for bits in (int(b) for b in args.bits.split(",")):
        config = CodecConfig(bits=bits, effort=args.effort)
        before, after = scores(Codec(own, config), images), scores(Codec(tuned, config), images)
        print(f"{bits} bits  TAESD's encoder: {before[0]:.3f} / {before[1]:.2f} / {before[2]:6.1f} / {before[3]:5.0f}   "
              f"tuned: {after[0]:.3f} / {after[1]:.2f} / {after[2]:6.1f} / {after[3]:5.0f}   "
              f"gain {after[1] - before[1]:+.2f} dB {after[2] - before[2]:+.1f}", flush=True)


if __name__ == "__main__":
    main()
