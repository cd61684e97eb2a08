"""Experiment: sd3 component steps from the decoder's sensitivity to each component, not from its span.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python component_sensitivity.py \
        --images 8 --crop 256 --levels 4,6,8 --exponents 0.5,0.75 [--encoder W]

For each photo the encoder decodes its latent sixteen more times, each with one principal component
carrying uniform noise of the channels' step, and takes the rise in squared error as that component's
sensitivity w. Steps ~ w ** -exponent (0.5 is what high-rate theory gives for squared error), with the
same geometric mean as the shipped quantiser's; "span" rows are the shipped 1/span rule. The blob format is
unchanged: the steps are the quantiser's table. Prints bpp / PSNR / SSIMULACRA2 per setting.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from restoration_filter import SHARED, scores  # run from benchmarks/

from sdfs.bench import centre_crop
from sdfs.codec import Codec, CodecConfig, ImageData, load_model, quant, read_image
from sdfs.codec.models import load_encoder_weights
from sdfs.codec.rotations import rotation_for_family, rotation_matrix


def sensitivities(model, latent: np.ndarray, rotation: np.ndarray, step: float) -> np.ndarray:
    """Mean squared change of the decoded image per component, under uniform noise of ``step``."""
    matrix = torch.from_numpy(rotation.astype(np.float32))
    z = torch.from_numpy(latent).float()[None]
    components = torch.einsum("kc,bchw->bkhw", matrix, z)
    generator = torch.Generator().manual_seed(0)
    out = []
    with torch.no_grad():
        base = model.decode(z.to(model.device)).cpu()
        for k in range(len(matrix)):
            noisy = components.clone()
            noisy[:, k] += (torch.rand(noisy[:, k].shape, generator=generator) - 0.5) * step
            image = model.decode(torch.einsum("kc,bkhw->bchw", matrix, noisy).to(model.device)).cpu()
            out.append(float((image - base).square().mean()))
    return np.maximum(np.array(out), 1e-12)


class SensitivityQuantizer(quant.RotatedQuantizer):
    """The shipped rotated quantiser with steps ~ the decoder's sensitivity ** -exponent instead of 1/span."""

    def __init__(self, model, exponent: float, levels: int) -> None:
        super().__init__(levels=levels, rotation=rotation_for_family(model.family.name))
        self.model, self.exponent = model, exponent

    def relative_steps(self, latent: np.ndarray, spans: np.ndarray) -> np.ndarray:
        rotation = rotation_matrix(self.rotation, latent.shape[0])
        w = sensitivities(self.model, latent, rotation, quant.channel_step(latent, self.levels))
        return (w / w.mean()) ** -self.exponent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--levels", default="4,6,8")
    parser.add_argument("--exponents", default="0.5,0.75")
    parser.add_argument("--encoder", type=Path, help="encode with these weights (finetune_encoder.py's output)")
    args = parser.parse_args()
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]
    images = [ImageData(centre_crop(read_image(f).rgb(), args.crop)) for f in files]
    model = load_model("madebyollin/taesd3", device="cpu")
    if args.encoder:
        load_encoder_weights(model.vae.encoder, args.encoder)
    print(f"{len(images)} Kodak images (crop {args.crop or 'none'}), {args.encoder or model.encoder_name}: "
          "bpp / PSNR / SSIMULACRA2")
    for levels in (int(v) for v in args.levels.split(",")):
        for rule in ["span"] + args.exponents.split(","):
            codec = Codec(model, CodecConfig(levels=levels))
            if rule != "span":
                codec.quantizer = SensitivityQuantizer(model, float(rule), levels)
            bpp, psnr, ssim2, _ = scores(codec, images)
            name = "1/span (shipped)" if rule == "span" else f"sensitivity^-{rule}"
            print(f"{levels:3d} levels, steps ~ {name}: {bpp:.3f} / {psnr:.2f} / {ssim2:6.1f}", flush=True)


if __name__ == "__main__":
    main()
