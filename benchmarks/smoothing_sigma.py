"""Experiment: the decoder-side Gaussian for unrefined latents (``LatentFamily.unrefined_smoothing``).

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/smoothing_sigma.py \
        --images 8 --bits 4,5,6 [--model madebyollin/taesdxl] [--effort 0] [--quantizer uniform]

Encodes each of the first ``--images`` Kodak images once per bit depth, then decodes the same
blob with each smoothing sigma (the blob's ``smoothing`` field rewritten), and prints the mean
PSNR / SSIMULACRA2 per sigma and the mean of each image's best sigma by PSNR. The bytes do not
depend on sigma. docs/BENCHMARKS.md records the outcome.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from sdfs.bench import measure
from sdfs.codec import Codec, CodecConfig, load_model, read_image
from sdfs.codec.container import Blob
from sdfs.codec.postfilter import SIGMA_UNITS

SHARED = Path(os.environ.get("SDFS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SIGMAS = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
METRICS = ("psnr", "ssimulacra2")


def with_smoothing(blob: bytes, sigma: float) -> bytes:
    parsed = Blob.from_bytes(blob)
    parsed.smoothing = round(sigma * SIGMA_UNITS) or None
    return parsed.to_bytes()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--bits", default="4,5,6")
    parser.add_argument("--model", default="madebyollin/taesd")
    parser.add_argument("--effort", type=int, default=0)
    parser.add_argument("--quantizer", default="uniform")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]
    model = load_model(args.model, device=args.device)
    print(f"{len(files)} Kodak images, {args.model}, {args.quantizer}, effort {args.effort}; PSNR/SSIMULACRA2 per sigma")
    for bits in (int(b) for b in args.bits.split(",")):
        codec = Codec(model, CodecConfig(bits=bits, effort=args.effort, quantizer=args.quantizer, smoothing=0))
        scores = np.zeros((len(files), len(SIGMAS), 2))
        bpp = []
        for i, path in enumerate(files):
            image = read_image(path)
            blob = codec.encode(image)
            bpp.append(len(blob) * 8 / (image.width * image.height))
            for j, sigma in enumerate(SIGMAS):
                decoded = codec.decode(with_smoothing(blob, sigma)).rgb()
                result = measure(image.rgb(), decoded, METRICS)
                scores[i, j] = result["psnr"], result["ssimulacra2"]
        mean = scores.mean(axis=0)
        best = scores[np.arange(len(files)), scores[:, :, 0].argmax(axis=1)].mean(axis=0)
        cells = "  ".join(f"{sigma}: {p:.2f}/{q:.1f}" for sigma, (p, q) in zip(SIGMAS, mean))
        print(f"{bits} bits {np.mean(bpp):.3f} bpp  {cells}  | best per image {best[0]:.2f}/{best[1]:.1f}", flush=True)


if __name__ == "__main__":
    main()
