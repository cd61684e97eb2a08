"""How far can any encoder take the TAESD decoder? Its best picture from any latent, against AVIF.

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/decoder_bound.py \
        --images 2,4,7,8,13,15,20,23 --crop 256 --bits 4,5 --steps 150 [--model madebyollin/taesd3]

For each Kodak centre crop:
- sdfs as shipped (effort 0) and at effort 4 (150 refinement steps with the quantised latent in
  the loop): bytes, PSNR, SSIMULACRA2;
- the *unquantised* latent that gives the decoder's best PSNR: Adam on the float latent from the
  fine-tuned encoder's, on squared error alone, ``--steps`` steps on a cosine. Every stored latent
  is one of the latents this search ranges over, so (up to the optimiser's local optimum) no
  encoder, effort or quantiser can give a higher PSNR through this decoder, at any bytes;
- AVIF (speed 6, every quality): the bytes it needs to reach that bound, and its scores at the
  bytes of each sdfs blob.

If AVIF reaches the bound in fewer bytes than the smallest sdfs latent, no latent for this
decoder can match AVIF on PSNR at any rate sdfs can code. docs/BENCHMARKS.md has the outcome.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from PIL import Image
from restoration_filter import SHARED  # run from benchmarks/ or with it on sys.path

from sdfs.bench import centre_crop, encode_conventional, measure
from sdfs.codec import Codec, CodecConfig, ImageData, load_model, read_image

METRICS = ("psnr", "ssimulacra2")


def best_latent(model, photo: np.ndarray, steps: int, lr: float) -> np.ndarray:
    """Decode of the float latent that minimises squared error, found by Adam from the encoder's."""
    target = Codec._to_tensor(photo)
    decoder = model.decode_with_grad()
    latent = model.encode(target).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    best, best_image = float("inf"), None
    for _ in range(steps + 1):
        image = decoder(latent)
        loss = ((image - target) ** 2).mean()
        value = float(loss.detach())
        if value < best:
            best, best_image = value, image.detach()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return ((best_image[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def avif_curve(photo: np.ndarray) -> list[tuple[int, dict[str, float]]]:
    """(bytes, scores) of AVIF at every quality, in order of bytes."""
    points = []
    for quality in range(0, 101, 2):
        data = encode_conventional(photo, "avif", quality)
        decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        points.append((len(data), measure(photo, decoded, METRICS)))
    return sorted(points, key=lambda p: p[0])


def avif_bytes_for(curve, metric: str, value: float) -> int | None:
    """The fewest AVIF bytes scoring at least ``value``; None if no quality does."""
    return next((size for size, scores in curve if scores[metric] >= value), None)


def avif_at(curve, budget: int) -> dict[str, float]:
    """AVIF's scores at the highest quality within ``budget`` bytes (NaN if none fits)."""
    fitting = [scores for size, scores in curve if size <= budget]
    return fitting[-1] if fitting else dict.fromkeys(METRICS, float("nan"))


def sdfs_point(model, photo: np.ndarray, bits: int, effort: int) -> tuple[int, dict[str, float]]:
    codec = Codec(model, CodecConfig(bits=bits, effort=effort))
    blob = codec.encode(ImageData(photo))
    return len(blob), measure(photo, codec.decode(blob).rgb(), METRICS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", default="2,4,7,8,13,15,20,23")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--bits", default="4,5")
    parser.add_argument("--efforts", default="0,4")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--model", default="madebyollin/taesd")
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    pixels = args.crop * args.crop
    totals: dict[str, list] = {}
    print(f"Kodak centre crops of {args.crop} px; bpp / PSNR / SSIMULACRA2, and AVIF at the same bytes")
    for number in (int(n) for n in args.images.split(",")):
        start = time.perf_counter()
        photo = centre_crop(read_image(SHARED / "data" / "kodak" / f"kodim{number:02d}.png").rgb(), args.crop)
        curve = avif_curve(photo)
        bound = measure(photo, best_latent(model, photo, args.steps, args.lr), METRICS)
        need = avif_bytes_for(curve, "psnr", bound["psnr"])
        reach = f"AVIF reaches it at {need * 8 / pixels:.3f} bpp" if need else "AVIF never reaches it"
        line = f"kodim{number:02d}  bound {bound['psnr']:.2f} dB / {bound['ssimulacra2']:5.1f}, {reach}"
        totals.setdefault("bound", []).append((need * 8 / pixels if need else np.nan, bound["psnr"], bound["ssimulacra2"]))
        for effort in (int(e) for e in args.efforts.split(",")):
            for bits in (int(b) for b in args.bits.split(",")):
                size, scores = sdfs_point(model, photo, bits, effort)
                avif = avif_at(curve, size)
                row = (size * 8 / pixels, scores["psnr"], scores["ssimulacra2"], avif["psnr"], avif["ssimulacra2"])
                totals.setdefault(f"{bits} bits, effort {effort}", []).append(row)
                line += f"\n    {bits} bits effort {effort}: {row[0]:.3f} / {row[1]:.2f} / {row[2]:5.1f}   AVIF {row[3]:.2f} / {row[4]:5.1f}"
        print(f"{line}\n    ({time.perf_counter() - start:.0f} s)", flush=True)
    print("\nmean over the crops")
    for name, rows in totals.items():
        mean = np.nanmean(np.array(rows, dtype=float), axis=0)
        if name == "bound":
            print(f"  decoder's best (float latent): {mean[1]:.2f} dB / {mean[2]:.1f}; AVIF reaches it at {mean[0]:.3f} bpp")
        else:
            print(f"  {name}: {mean[0]:.3f} bpp {mean[1]:.2f} dB / {mean[2]:.1f}   AVIF {mean[3]:.2f} dB / {mean[4]:.1f}")


if __name__ == "__main__":
    main()
