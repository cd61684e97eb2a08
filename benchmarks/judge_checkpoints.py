"""Judge a training run's checkpoints by the real codec, not by the training objective.

Near convergence ``finetune_encoder.py``'s held-out objective is a poor judge: three runs from one pair lowered it
2-3 % and gained nothing through the real codec (docs/BENCHMARKS.md, 2026-12-07). This codes the held-out photos
with each checkpoint through sdfs's ``Codec`` (quantiser, entropy coder, restoration filter, as shipped) at a few
levels and prints each one's BD-rate on PSNR and SSIMULACRA2 against a reference pair (default: the shipped one).

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python judge_checkpoints.py \
        --model madebyollin/taesd3 --files /tmp/sk/skimage/data/coffee.png,/tmp/sk/extra/flower.jpg,... \
        /tmp/runM/enc_step500.safetensors:/tmp/runM/dec_step500.safetensors ...

Each checkpoint is ``ENCODER[:DECODER]`` (finetune_encoder.py's ``--out`` and ``--out-decoder``, or the
``_stepN`` files ``--save-every`` writes); ``--run OUT:OUT_DECODER`` judges all of a run's ``_stepN`` files.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from restoration_filter import scores  # run from benchmarks/

from sdfs.bench import bd_rate
from sdfs.codec import Codec, CodecConfig, ImageData, load_model, read_image
from sdfs.codec.models import load_decoder_weights, load_encoder_weights, read_weights

Point = tuple[float, float, float]  # bpp, PSNR, SSIMULACRA2


def rate_points(model_id: str, encoder: Path | None, decoder: Path | None, images: list[ImageData],
                levels: list[int]) -> list[Point]:
    """Mean (bpp, PSNR, SSIMULACRA2) of ``images`` at each of ``levels``, effort 0, through the shipped codec with
    these weights (None: the shipped ones)."""
    model = load_model(model_id, device="cpu", tuned_decoder=decoder is None)
    if encoder:
        load_encoder_weights(model.vae.encoder, encoder)
    if decoder:
        load_decoder_weights(model.vae.decoder, *read_weights(decoder))
    return [scores(Codec(model, CodecConfig(levels=n)), images)[:3] for n in levels]


def run_checkpoints(spec: str) -> list[str]:
    """``OUT[:OUT_DECODER]`` -> the ``ENCODER[:DECODER]`` pairs of its ``_stepN`` files, by step."""
    out, _, out_decoder = spec.partition(":")
    stem, suffix = Path(out).stem, Path(out).suffix
    steps = sorted(int(m.group(1)) for f in Path(out).parent.glob(f"{stem}_step*{suffix}")
                   if (m := re.fullmatch(rf"{re.escape(stem)}_step(\d+)", f.stem)))

    def at(path: str, step: int) -> str:
        return str(Path(path).with_name(f"{Path(path).stem}_step{step}{Path(path).suffix}"))

    return [at(out, s) + (f":{at(out_decoder, s)}" if out_decoder else "") for s in steps]


def bd_rates(reference: list[Point], test: list[Point], bpp_range: tuple[float, float]) -> tuple[float, float]:
    """BD-rate of ``test`` against ``reference`` on PSNR and on SSIMULACRA2, in percent."""
    return tuple(bd_rate([(p[0], p[i]) for p in reference], [(p[0], p[i]) for p in test], bpp_range)
                 for i in (1, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="*", help="ENCODER[:DECODER] weights files")
    parser.add_argument("--run", action="append", default=[], metavar="OUT[:OUT_DECODER]",
                        help="judge every _stepN checkpoint of this run")
    parser.add_argument("--model", default="madebyollin/taesd3")
    parser.add_argument("--files", required=True, help="comma-separated held-out photos (never Kodak's)")
    parser.add_argument("--levels", default="3,4,6,8")
    parser.add_argument("--reference", default="", metavar="ENCODER[:DECODER]",
                        help="the pair to compare with (default: the shipped one)")
    parser.add_argument("--range", default="0.05,0.5", help="bpp range of the BD-rate")
    args = parser.parse_args()
    images = [ImageData(read_image(Path(f)).rgb()) for f in args.files.split(",")]
    levels = [int(n) for n in args.levels.split(",")]
    bpp_range = tuple(float(x) for x in args.range.split(","))
    checkpoints = [c for spec in args.run for c in run_checkpoints(spec)] + args.checkpoints

    def points(spec: str) -> list[Point]:
        encoder, _, decoder = spec.partition(":")
        return rate_points(args.model, Path(encoder) if encoder else None, Path(decoder) if decoder else None,
                           images, levels)

    reference = points(args.reference)
    print(f"{len(images)} photos, {args.model}, levels {args.levels}; BD-rate over {args.range} bpp against "
          f"{args.reference or 'the shipped pair'}:")
    print("  reference: " + "  ".join(f"{b:.3f} / {p:.2f} / {s:.1f}" for b, p, s in reference), flush=True)
    results = []
    for spec in checkpoints:
        test = points(spec)
        psnr, ssim2 = bd_rates(reference, test, bpp_range)
        results.append((psnr + ssim2, spec))
        print(f"  {spec}: PSNR {psnr:+.2f} %  SSIMULACRA2 {ssim2:+.2f} %   "
              + "  ".join(f"{b:.3f} / {p:.2f} / {s:.1f}" for b, p, s in test), flush=True)
    if results:
        print(f"best (lowest sum of the two): {min(results)[1]}")


if __name__ == "__main__":
    main()
