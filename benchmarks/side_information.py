"""Experiment: what the entropy coder's lean side information saves on whole blobs.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python side_information.py \
        --model madebyollin/taesd --points 3,4,5,6
    cd benchmarks && ... side_information.py --model madebyollin/taesd3 --points 4L,5L,6L,8L,10L
    cd benchmarks && ... side_information.py --model madebyollin/taesd3 --points 3L,4L,6L,8L,16L --against "context v4"

Encodes the first ``--images`` Kodak images (or centre crops of ``--crop`` pixels) at each rate
point (bits, or levels as ``NL``) at effort 0 with the restoration filter, twice: with an older
coder (``--against``; by default the context coder's first side information, ``context v1``:
every weight at 1/1024 as a varint) and with the current one (``context``).
The latent and its symbols are the same both ways, so the pictures differ only where the smaller
payload tips the encoder's choice of restoration filter; the script counts those. Prints mean
bytes per blob, the change, and the side information's share of the payload. docs/BENCHMARKS.md
records the outcome.
"""

from __future__ import annotations

import argparse

import torch
from restoration_filter import SHARED  # run from benchmarks/

from sdfs.bench import centre_crop
from sdfs.codec import Codec, CodecConfig, ImageData, load_model, read_image
from sdfs.codec import entropy
from sdfs.codec.codec import MIN_SIDE
from sdfs.codec.container import Blob
from sdfs.codec.images import pad_to_multiple
from sdfs.codec.varint import read_varint

CODERS = {name: coder for coder, name in entropy.CODER_NAMES.items() if coder in entropy.CONTEXT_CODERS}


def point_config(point: str, coder: int) -> CodecConfig:
    if point.endswith("L"):
        return CodecConfig(levels=int(point[:-1]), coder=coder)
    return CodecConfig(bits=int(point), coder=coder)


def side_bytes(payload: bytes) -> int:
    length, position = read_varint(payload, 0, ValueError)
    return length + position


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="madebyollin/taesd")
    parser.add_argument("--points", default="4,5", help="bits, or levels as NL")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--crop", type=int, default=0)
    parser.add_argument("--against", default="context v1", choices=[n for n in CODERS if n != "context"],
                        help="the older coder the current one is measured against")
    args = parser.parse_args()
    coders = {name: CODERS[name] for name in (args.against, "context")}
    torch.set_num_threads(2)
    model = load_model(args.model, device="cpu")
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]
    points = args.points.split(",")
    blobs, pixels = {(p, c): [] for p in points for c in coders}, 0
    for path in files:
        image = ImageData(centre_crop(read_image(path).rgb(), args.crop))
        pixels += image.width * image.height
        x = Codec._to_tensor(pad_to_multiple(image.rgb(), model.factor, MIN_SIDE)[0])
        latent = Codec(model)._encode_tensors([x])[0]
        for point in points:
            for name, coder in coders.items():
                codec = Codec(model, point_config(point, coder))
                blobs[point, name].append(codec._finish(codec._code(image, image, x, latent))[0])
    print(f"{len(files)} Kodak images (crop {args.crop or 'none'}), {args.model}, effort 0: mean bytes per blob "
          f"(bpp), side information's share of the payload")
    for point in points:
        row = []
        for name in coders:
            parsed = [Blob.from_bytes(b) for b in blobs[point, name]]
            total = sum(map(len, blobs[point, name]))
            share = sum(side_bytes(b.payload) for b in parsed) / sum(len(b.payload) for b in parsed)
            row.append((total, share, [b.restoration for b in parsed]))
        (old, old_share, old_filters), (new, new_share, new_filters) = row
        flips = sum(a != b for a, b in zip(old_filters, new_filters))
        print(f"  {point:>4}: {args.against} {old / len(files):8.0f} B ({8 * old / pixels:.4f} bpp, side {100 * old_share:4.1f} %)"
              f"  context {new / len(files):8.0f} B ({8 * new / pixels:.4f} bpp, side {100 * new_share:4.1f} %)"
              f"  {100 * (new - old) / old:+.2f} %  (filter kind changed on {flips})", flush=True)


if __name__ == "__main__":
    main()
