"""Fit a latent family's channel rotation (a KLT) on the encoder's training photos.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python fit_rotation.py \
        --model madebyollin/taesd3 --data /tmp/sk/skimage/data --extra /tmp/sk/extra --out rotation.npy

Photos are those ``finetune_encoder.py`` trains on (its docstring says how to get them; none is
a Kodak image). Each is encoded with the model's shipped encoder (centre crops of at most
``--max-side`` pixels; grey photos skipped unless ``--grey``), the channel covariance of all
latent cells is summed, and its eigenvectors, largest variance first, are written as a float16
(C, C) array: rows are the components the rotated quantiser codes. Prints the channel
correlations and the coding gain the rotation promises in theory (Gaussian, high rate).
sdfs/codec/weights/sd3_channel_rotation_v1.npy was written by this script (2026-11-27).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from finetune_encoder import load_photo, multiple_of_8, photo_files  # run from benchmarks/

from sdfs.codec import load_model


def centre_crop(x: torch.Tensor, side: int) -> torch.Tensor:
    _, height, width = x.shape
    top, left = max(0, (height - side) // 2), max(0, (width - side) // 2)
    return x[:, top:top + side, left:left + side]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="madebyollin/taesd3")
    parser.add_argument("--data", type=Path, required=True, help="scikit-image's skimage/data folder")
    parser.add_argument("--extra", type=Path, action="append", default=[], help="a folder of more photos (repeatable)")
    parser.add_argument("--max-side", type=int, default=768)
    parser.add_argument("--grey", action="store_true",
                        help="fit on grey photos too (their latents span few directions and would lead the fit)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    total, count = None, 0
    for path in photo_files(args.data, args.extra):
        x = multiple_of_8(centre_crop(load_photo(path), args.max_side))
        if not args.grey and bool((x[0] == x[1]).all() and (x[1] == x[2]).all()):
            continue
        with torch.no_grad():
            z = model.encode(x[None])[0].double().reshape(model.channels, -1)
        outer = torch.cat([z, torch.ones_like(z[:1])]) @ torch.cat([z, torch.ones_like(z[:1])]).T
        total = outer if total is None else total + outer
        count += z.shape[1]
    mean = total[:-1, -1] / count
    covariance = (total[:-1, :-1] / count - torch.outer(mean, mean)).numpy()
    eigenvalues, vectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    rotation = vectors[:, order].T
    rotation *= np.sign(rotation.sum(axis=1, keepdims=True) + 1e-12)  # a fixed sign per component
    np.save(args.out, rotation.astype(np.float16))
    spread = np.sqrt(np.diag(covariance))
    correlation = covariance / np.outer(spread, spread)
    off = np.abs(correlation[~np.eye(len(correlation), dtype=bool)])
    gain = 10 * np.log10(np.exp(np.log(np.diag(covariance)).mean()) / np.exp(np.log(eigenvalues).mean()))
    print(f"{args.model} ({model.encoder_name}), {count} latent cells: channel |correlation| mean {off.mean():.3f} "
          f"max {off.max():.3f}; KLT coding gain {gain:.2f} dB ({gain / 6.02:.3f} bits per value)")
    print("component variances:", " ".join(f"{v:.3f}" for v in eigenvalues[order]))


if __name__ == "__main__":
    main()
