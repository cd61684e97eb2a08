"""Fine-tune the TAESD encoder for the TAESD decoder that reads sdfs blobs.

TAESD's encoder was distilled to imitate the SD VAE's latents, not to give its own small
decoder the best picture. This trains it, with the decoder frozen, to minimise what sdfs's
refinement minimises (squared error + 0.1 x (1 - SSIM)) on the decoded image of a latent
that carries uniform quantisation noise of a 3-6 bit grid. The result ships as
``sdfs/codec/weights/taesd_encoder_sdfs.safetensors`` and is what ``load_model`` uses for
``madebyollin/taesd`` (docs/BENCHMARKS.md has the measurements).

No Kodak image is used for training (Kodak is the test set). The training photos are
scikit-image's bundled samples and ../shared/data/awkward's photos:

    pip download --no-deps --only-binary=:all: scikit-image==0.26.0 -d /tmp/sk
    (cd /tmp/sk && unzip -q scikit_image-*.whl 'skimage/data/*')
    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/finetune_encoder.py \
        --data /tmp/sk/skimage/data --steps 300 --lr 1e-4 --bits 4,5 --out sdfs/codec/weights/taesd_encoder_sdfs.safetensors

(2 CPU cores: 3.7 s per step of 8 crops of 128 px, 19 minutes.) Continuing it for 400 more steps at
lr 5e-5 with 3-6 bit noise (``--init``) lost 0.2 dB on Kodak and was not kept.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from sdfs.codec import load_model
from sdfs.codec.models import save_encoder
from sdfs.codec.optimize import Objective

SHARED = Path(os.environ.get("SDFS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png",
                  "rocket.jpg", "hubble_deep_field.jpg", "camera.png", "brick.png", "grass.png", "gravel.png",
                  "coins.png", "color.png")
AWKWARD_PHOTOS = ("cmyk_Channel_digital_image_CMYK_color.jpg", "gray_concert.jpg", "orient6_Landscape_6.jpg")


def training_images(data: Path, crop: int) -> list[torch.Tensor]:
    files = [data / n for n in SKIMAGE_PHOTOS] + [SHARED / "data" / "awkward" / n for n in AWKWARD_PHOTOS]
    images = []
    for f in files:
        with Image.open(f) as im:
            rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB")).copy()
        if min(rgb.shape[:2]) >= crop:
            images.append(torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1)
    return images


def random_crops(images: list[torch.Tensor], count: int, crop: int, rng: random.Random) -> torch.Tensor:
    out = []
    for _ in range(count):
        image = rng.choice(images)
        _, height, width = image.shape
        y, x = rng.randrange(height - crop + 1), rng.randrange(width - crop + 1)
        piece = image[:, y:y + crop, x:x + crop]
        out.append(piece.flip(-1) if rng.random() < 0.5 else piece)
    return torch.stack(out)


def with_quantisation_noise(z: torch.Tensor, levels: int) -> torch.Tensor:
    """Add the error of a uniform grid of ``levels`` over each channel's range (as sdfs's quantiser)."""
    low = z.detach().amin(dim=(0, 2, 3), keepdim=True)
    high = z.detach().amax(dim=(0, 2, 3), keepdim=True)
    return z + (torch.rand_like(z) - 0.5) * (high - low) / (levels - 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True, help="scikit-image's skimage/data folder")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--bits", default="4,5")
    parser.add_argument("--structure", type=float, default=0.1)
    parser.add_argument("--init", type=Path, help="start from these encoder weights (default: TAESD's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    images = training_images(args.data, args.crop)
    print(f"{len(images)} training photos", flush=True)
    model = load_model("madebyollin/taesd", device="cpu", tuned_encoder=False)
    encoder, decoder = model.vae.encoder, model.vae.decoder
    if args.init:
        from safetensors.torch import load_file

        encoder.load_state_dict(load_file(str(args.init)))
    encoder.requires_grad_(True).train()
    optimizer = torch.optim.Adam(encoder.parameters(), lr=args.lr)
    objective = Objective(structure_weight=args.structure)
    bits = [int(b) for b in args.bits.split(",")]
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    start, smoothed = time.perf_counter(), None
    for step in range(args.steps):
        x = random_crops(images, args.batch, args.crop, rng)
        z = with_quantisation_noise(encoder(x), 2 ** rng.choice(bits))
        loss = objective.distortion(decoder(z), x, None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        smoothed = value if smoothed is None else 0.95 * smoothed + 0.05 * value
        if step % 20 == 0 or step == args.steps - 1:
            print(f"step {step} loss {smoothed:.5f} {time.perf_counter() - start:.0f} s", flush=True)
    save_encoder(encoder, model, args.out)


if __name__ == "__main__":
    main()
