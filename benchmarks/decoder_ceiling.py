"""What the TAESD decoder can show at best: Kodak decoded from unquantised latents.

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/decoder_ceiling.py [--images 24]

For TAESD's own encoder and sdfs's fine-tuned one, encodes each Kodak photo, decodes the float
latent as it is (no quantiser, no restoration filter) and prints mean PSNR and SSIMULACRA2: the
ceiling no bit depth can pass at effort 0. docs/BENCHMARKS.md quotes it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from sdfs.codec import load_model, read_image
from sdfs.metrics import psnr, ssimulacra2

SHARED = Path(os.environ.get("SDFS_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=24)
    args = parser.parse_args()
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]
    photos = [read_image(f).rgb() for f in files]
    for tuned in (False, True):
        model = load_model("madebyollin/taesd", device="cpu", tuned_encoder=tuned)
        scores = []
        for rgb in photos:
            x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 127.5 - 1
            decoded = model.decode(model.encode(x))[0].clamp(-1, 1)
            out = ((decoded.permute(1, 2, 0).float().numpy() + 1) * 127.5).round().astype(np.uint8)
            scores.append((psnr(rgb, out), ssimulacra2(rgb, out)))
        mean = np.mean(scores, axis=0)
        print(f"{model.encoder_name:45s} {len(photos)} Kodak images, unquantised: "
              f"PSNR {mean[0]:.2f} dB, SSIMULACRA2 {mean[1]:.1f}", flush=True)


if __name__ == "__main__":
    main()
