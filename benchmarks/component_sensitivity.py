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
from sdfs.codec.rotations import rotation_matrix


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


def sensitivity_quantize(model, exponent: float):
    """A RotatedQuantizer.quantize whose steps follow the decoder's sensitivities."""
    def quantize(self, latent: np.ndarray) -> quant.QuantizedLatent:
        channels = latent.shape[0]
        flat = latent.reshape(channels, -1)
        step = max(float((flat.max(axis=1) - flat.min(axis=1)).mean()), 1e-3) / (self.levels - 1)
        rotation = rotation_matrix(self.rotation, channels)
        components = rotation @ flat
        low = components.min(axis=1)
        spans = np.maximum(components.max(axis=1) - low, 1e-3)
        w = sensitivities(model, latent, rotation, step)
        steps = (w / w.mean()) ** -exponent
        steps *= step / np.exp(np.log(steps).mean())
        steps *= max(float((spans / steps).max()) + 1, quant.MAX_ROTATED_SYMBOLS) / quant.MAX_ROTATED_SYMBOLS
        symbols = min(max(int(np.ceil((spans / steps).max())) + 1, 2), quant.MAX_ROTATED_SYMBOLS)
        table = np.stack([low, low + steps * (symbols - 1)], axis=1).astype(np.float16)
        q = quant.QuantizedLatent(quant.ROTATED, symbols, np.zeros((1,), np.int32), table, self.rotation, self.levels)
        q.symbols = quant.grid_symbols(components.reshape(latent.shape), q)
        return q
    return quantize


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
    shipped = quant.RotatedQuantizer.quantize
    print(f"{len(images)} Kodak images (crop {args.crop or 'none'}), {args.encoder or model.encoder_name}: "
          "bpp / PSNR / SSIMULACRA2")
    for levels in (int(v) for v in args.levels.split(",")):
        for rule in ["span"] + args.exponents.split(","):
            quant.RotatedQuantizer.quantize = shipped if rule == "span" else sensitivity_quantize(model, float(rule))
            bpp, psnr, ssim2, _ = scores(Codec(model, CodecConfig(levels=levels)), images)
            name = "1/span (shipped)" if rule == "span" else f"sensitivity^-{rule}"
            print(f"{levels:3d} levels, steps ~ {name}: {bpp:.3f} / {psnr:.2f} / {ssim2:6.1f}", flush=True)
    quant.RotatedQuantizer.quantize = shipped


if __name__ == "__main__":
    main()
