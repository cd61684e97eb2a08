"""Experiment: the shipped codec's rate points at any number of levels, effort and scale.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python rate_points.py \
        --model madebyollin/taesd --levels 12,16,20,24,32,48 --images 8 [--efforts 0,1] [--crop 0] [--scale 1] \
        [--rate-weights 0,0.03] [--decorrelate 0,1] [--bands 0,1 [--min-haar-cells N] [--haar-levels 2,3 [--nested-max 16]]] \
        [--step-exponents 0,-0.75,-1] [--rate-estimates band,plane] [--no-restoration] \
        [--own-encoder | --encoder W] [--decoder W | --stock-decoder [--read-with W]]

For each (levels, effort, refinement's rate weight, channels or principal components), encodes
the first ``--images`` Kodak images (or centre crops of ``--crop`` pixels) with the model's
default encoder and the restoration filter, and prints mean bpp, PSNR and SSIMULACRA2 and the
seconds the encodes and decodes took. docs/BENCHMARKS.md records the outcome.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from restoration_filter import SHARED, scores  # run from benchmarks/

from sdfs.bench import centre_crop
from sdfs.codec import Codec, CodecConfig, ImageData, load_model, optimize, quant, read_image
from sdfs.codec.models import load_decoder_weights, load_encoder_weights, read_weights

SHIPPED_BAND_BITS = optimize.band_bits
RATE_ESTIMATES = {"band": SHIPPED_BAND_BITS,  # each nested sub-band on its own grid (since 2026-12-05)
                  "plane": lambda codes, channels, depth: optimize.estimated_bits(codes)}  # each plane whole


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="madebyollin/taesd")
    parser.add_argument("--levels", default="16,32", help="comma-separated levels per latent value")
    parser.add_argument("--efforts", default="0")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--files", help="comma-separated photos to code instead of Kodak's (e.g. an encoder's held-out ones)")
    parser.add_argument("--crop", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rate-weights", help="refinement's rate weights to try (default: CodecConfig's)")
    parser.add_argument("--decorrelate", default="1",
                        help="0 and/or 1: code the channels or their principal components")
    parser.add_argument("--bands", default="1", help="0 and/or 1: components rounded cell by cell or as Haar bands")
    parser.add_argument("--haar-levels", default=str(CodecConfig.haar_levels),
                        help="bands: Haar levels (1, 2 or 3; more than one only up to quant.NESTED_MAX_LEVELS)")
    parser.add_argument("--nested-max", type=int, default=quant.NESTED_MAX_LEVELS,
                        help="bands: nested Haar levels up to this many levels (quant.NESTED_MAX_LEVELS)")
    parser.add_argument("--min-haar-cells", type=int, default=quant.MIN_HAAR_CELLS,
                        help="latents of fewer cells are rounded cell by cell even with --bands 1")
    parser.add_argument("--no-restoration", action="store_true",
                        help="without the decoder-side restoration filter (what a tuned decoder gains on its own)")
    parser.add_argument("--own-encoder", action="store_true", help="the model's own encoder, not sdfs's tuned one")
    parser.add_argument("--encoder", type=Path, help="encode with these weights (finetune_encoder.py's output)")
    parser.add_argument("--decoder", type=Path, help="decode with these weights (finetune_encoder.py's --out-decoder)")
    parser.add_argument("--stock-decoder", action="store_true", help="the model's own decoder, not sdfs's tuned one")
    parser.add_argument("--read-with", type=Path,
                        help="encode with the model's decoder, decode the blobs with these weights (blobs written before)")
    parser.add_argument("--step-exponents", default=str(quant.STEP_EXPONENT),
                        help="rotated quantiser: a component's step ~ its span ** this (0: one step for all)")
    parser.add_argument("--rate-estimates", default="band",
                        help="effort's rate estimate on Haar bands: band (shipped) and/or plane (before 2026-12-05)")
    args = parser.parse_args()
    quant.MIN_HAAR_CELLS = args.min_haar_cells  # read by RotatedHaarQuantizer.quantize
    quant.NESTED_MAX_LEVELS = args.nested_max  # read by make_quantizer
    files = ([Path(f) for f in args.files.split(",")] if args.files
             else sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images])
    images = [ImageData(centre_crop(read_image(f).rgb(), args.crop)) for f in files]
    model = load_model(args.model, device="cpu", tuned_encoder=not args.own_encoder,
                       tuned_decoder=not (args.decoder or args.stock_decoder))
    if args.encoder:
        load_encoder_weights(model.vae.encoder, args.encoder)
    if args.decoder:
        load_decoder_weights(model.vae.decoder, *read_weights(args.decoder))
    reader = None
    if args.read_with:
        reader = load_model(args.model, device="cpu", tuned_encoder=False, tuned_decoder=False)
        load_decoder_weights(reader.vae.decoder, *read_weights(args.read_with))
    print(f"{len(images)} {'photos' if args.files else 'Kodak images'} (crop {args.crop or 'none'}, scale {args.scale}), {args.model}, "
          f"{args.encoder or model.encoder_name}, decoder {args.decoder or model.decoder_name}"
          f"{f', read with {args.read_with}' if args.read_with else ''}: bpp / PSNR / SSIMULACRA2 / encode+decode s")
    variants = [(bool(int(b)), int(h)) for b in args.bands.split(",")
                for h in (args.haar_levels.split(",") if int(b) else ["1"])]
    rates = [float(r) for r in args.rate_weights.split(",")] if args.rate_weights else [CodecConfig.rate_weight]
    for levels in (int(v) for v in args.levels.split(",")):
        for effort, estimate in ((int(e), m) for e in args.efforts.split(",")
                                 for m in (args.rate_estimates.split(",") if int(e) else ["band"])):
            optimize.band_bits = RATE_ESTIMATES[estimate]  # read by optimize._refine_haar_tiled
            for rate in rates if effort else [0.0]:
                for decorrelate in (bool(int(d)) for d in args.decorrelate.split(",")):
                    for exponent in (float(e) for e in args.step_exponents.split(",")) if decorrelate else [0.0]:
                        for bands, haar_levels in variants if decorrelate else [(False, 1)]:
                            quant.STEP_EXPONENT = exponent  # read by RotatedQuantizer.quantize
                            config = CodecConfig(levels=levels, effort=effort, scale=args.scale, rate_weight=rate,
                                                 decorrelate=decorrelate, bands=bands, haar_levels=haar_levels,
                                                 restoration=not args.no_restoration)
                            bpp, psnr, ssim2, seconds = scores(Codec(model, config), images,
                                                               reader and Codec(reader, config))
                            coded = f"components{f' as {haar_levels} Haar levels' if bands else ''}, " \
                                    f"step ~ span^{exponent:g}" if decorrelate else "channels"
                            print(f"{levels:3d} levels effort {effort} rate weight {rate:g} ({estimate} estimate) "
                                  f"{coded}: {bpp:.3f} / "
                                  f"{psnr:.2f} / {ssim2:6.1f} / {seconds:5.0f}", flush=True)


if __name__ == "__main__":
    main()
