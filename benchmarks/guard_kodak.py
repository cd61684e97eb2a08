"""The quality guard on the Kodak set: what it stores per image, at what size and score, and at what cost.

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/guard_kodak.py \
        [--floor ssimulacra2:30] [--model M] [--bits N | --levels N] [--limit N] [--effort N] [--device cuda] [--csv benchmarks/results/guard_kodak.csv]

Faces (kodim04, 15, 18) and text (kodim03, 08, 10, 14) are the images latents are known to fail on;
the table marks them. docs/BENCHMARKS.md quotes the output.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from collections import Counter
from pathlib import Path

from sdfs.codec import DEFAULT_MODEL, Codec, read_image
from sdfs.guard import DEFAULT_FLOOR, QualityFloor, QualityGuard, encode_images, scoring_view

SHARED = Path(os.environ.get("SDFS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
TAGS = {**dict.fromkeys(("kodim04", "kodim15", "kodim18"), "face"),
        **dict.fromkeys(("kodim03", "kodim08", "kodim10", "kodim14"), "text")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floor", default=DEFAULT_FLOOR)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--bits", type=int, help="bits per latent value (default: the family's rate)")
    parser.add_argument("--levels", type=int, help="levels per latent value, instead of --bits")
    parser.add_argument("--effort", type=int, default=0, choices=range(5))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[: args.limit]
    codec = Codec.from_pretrained(args.model, device=args.device, bits=args.bits, levels=args.levels,
                                 effort=args.effort)
    guard = QualityGuard(QualityFloor.parse(args.floor))
    rows = [measure(codec, guard, path) for path in files]
    rate = f"{codec.quantizer.levels} levels"
    print(f"quality guard, floor {args.floor}, {args.model} at {rate}, effort {args.effort}, "
          f"{len(rows)} Kodak images, device {codec.model.device}")
    print(f"{'image':8s} {'tag':4s} {'latent B':>8s} {'score':>6s} {'j':1s} {'avif B':>7s} {'score':>6s} {'q':>3s} {'sp':>2s} "
          f"{'stored':>8s} {'bytes':>7s} {'bpp':>6s} {'s':>5s}")
    for r in rows:
        print(f"{r['image']:8s} {r['tag']:4s} {r['latent_bytes']:8d} {r['latent_score']:6.1f} {'y' if r['latent_judged'] else '-'} "
              f"{r['avif_bytes'] or 0:7d} {r['avif_score'] or float('nan'):6.1f} {r['avif_quality'] or 0:3d} {r['avif_speed'] or 0:2d} "
              f"{r['stored']:>8s} {r['stored_bytes']:7d} {r['bpp']:6.3f} {r['seconds']:5.1f}")
    summarise(rows, args.floor, str(codec.model.device))
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")


def measure(codec: Codec, guard: QualityGuard, path: Path) -> dict:
    data = path.read_bytes()
    image = read_image(data)
    started = time.perf_counter()
    [choice] = encode_images(codec, guard, [(path.name, image, data)])
    seconds = time.perf_counter() - started
    record = choice.record
    latent, avif = record.get("latent", {}), record.get("avif", {})
    judged = "score" in latent
    if not judged and guard.floor is not None:
        # the guard did not judge it (something else was smaller than its blob could be): judged here, untimed
        [(blob, picture)] = codec.encode_decoded_batch([image])
        latent = {"bytes": len(blob), "score": guard.floor.scorer(scoring_view(image.rgb()))(scoring_view(picture.rgb()))}
    size = len(choice.data) if choice.data is not None else len(data)
    return {"image": path.stem, "tag": TAGS.get(path.stem, ""), "latent_bytes": latent.get("bytes", 0),
            "latent_score": latent.get("score", float("nan")), "latent_judged": judged, "avif_bytes": avif.get("bytes"),
            "avif_score": avif.get("score"), "avif_quality": avif.get("quality"),
            "avif_speed": avif.get("speed"), "stored": choice.kind,
            "stored_bytes": size, "original_bytes": len(data), "pixels": image.width * image.height,
            "bpp": size * 8 / (image.width * image.height),
            "seconds": round(seconds, 2)}


def summarise(rows: list[dict], floor: str, device: str) -> None:
    threshold = QualityFloor.parse(floor).threshold
    mix = Counter(r["stored"] for r in rows)
    stored = sum(r["stored_bytes"] for r in rows)
    latent = sum(r["latent_bytes"] for r in rows)
    original = sum(r["original_bytes"] for r in rows)
    below = [r["image"] for r in rows if r["latent_score"] < threshold]
    caught = [f"{r['image']} ({r['tag']})" for r in rows if r["tag"] and r["latent_score"] < threshold]
    print(f"stored: {', '.join(f'{n} {k}' for k, n in mix.most_common())}; {stored:,} B in all "
          f"(latents alone {latent:,} B, original PNGs {original:,} B)")
    print(f"latent below the floor on {len(below)}/{len(rows)} images; faces and text caught: {', '.join(caught)}")
    print(f"latents the guard decoded and judged (j): {sum(r['latent_judged'] for r in rows)}/{len(rows)}; the rest "
          "could not be the smallest, and were judged after the guard, outside its time")
    seconds, pixels = sum(r["seconds"] for r in rows), sum(r["pixels"] for r in rows)
    print(f"encode with the guard: {seconds / len(rows):.1f} s per image, {seconds / pixels * 1e6:.1f} s/MP ({device})")


if __name__ == "__main__":
    main()
