"""Experiment: what a bit is worth at each level, to price the rate term of ``finetune_encoder.py``.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python rate_slopes.py \
        --files /tmp/sk/skimage/data/coffee.png,/tmp/sk/extra/flower.jpg,/tmp/sk/extra/DepartmentStore.jpg \
        [--encoder W --decoder W] [--levels 2,3,4,5,6,7,8,10,12]

(default: sdfs's shipped TAESD3 encoder and decoder).

Codes the photos' TAESD3 latents on the Haar grid that training uses (``HaarGrid``, rounded bands) at each number of
levels, decodes them, and prints the mean of training's distortion (squared error on [-1, 1] + 0.1 x (1 - SSIM)), the
estimated bits per pixel, and the slope between neighbouring levels: the distortion a bit buys there. A rate weight
below a level's slope makes training's objective fall when the encoder merely spends more bits at that level (a move
along the rate-distortion curve, which the real codec's BD-rate does not reward); a weight at the slope leaves such
moves neutral, so that what lowers the objective is a better curve.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from finetune_encoder import HaarGrid, load_photo, multiple_of_8  # run from benchmarks/

from sdfs.codec import load_model
from sdfs.codec.models import load_decoder_weights, load_encoder_weights, read_weights
from sdfs.codec.optimize import Objective

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", required=True, help="comma-separated photos (an encoder's held-out ones)")
    parser.add_argument("--levels", default="2,3,4,5,6,7,8,10,12")
    parser.add_argument("--encoder", type=Path, help="finetune_encoder.py's --out (default: sdfs's shipped one)")
    parser.add_argument("--decoder", type=Path, help="finetune_encoder.py's --out-decoder (default: sdfs's shipped one)")
    args = parser.parse_args()
    model = load_model("madebyollin/taesd3", device="cpu", dtype=torch.float32, tuned_decoder=not args.decoder)
    encoder, decoder = model.vae.encoder.eval(), model.vae.decoder.eval()
    if args.encoder:
        load_encoder_weights(encoder, args.encoder)
    if args.decoder:
        load_decoder_weights(decoder, *read_weights(args.decoder))
    photos = [multiple_of_8(load_photo(Path(f))) for f in args.files.split(",")]
    grid = HaarGrid(1, decoder.layers[0].in_channels, "cpu", 2, 1.0)
    objective = Objective(structure_weight=0.1)
    previous = None
    with torch.no_grad():
        latents = [encoder(x[None]) for x in photos]
        for levels in (int(n) for n in args.levels.split(",")):
            distortion = bpp = 0.0
            for x, z in zip(photos, latents):
                latent, codes = grid.quantised(z, levels)
                distortion += float(objective.distortion(decoder(latent).clamp(-1, 1), x[None], None)) / len(photos)
                bpp += float(grid.bpp(codes)) / len(photos)
            slope = "" if previous is None else f"  slope {(previous[0] - distortion) / (bpp - previous[1]):.4f}"
            print(f"levels {levels:2d}  distortion {distortion:.5f}  bpp~ {bpp:.4f}{slope}", flush=True)
            previous = (distortion, bpp)


if __name__ == "__main__":
    main()
