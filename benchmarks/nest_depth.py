"""Experiment: how many Haar levels to nest in sd3's LL bands, by the bytes of the same latents.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python nest_depth.py \
        --images 24 --levels 3,4,5,6,7 --haar-levels 2,3 [--nested-max 16]

For each Kodak photo (whole) the shipped sd3 encoder's latent is quantised once per Haar depth
(``CodecConfig.haar_levels``: 2 is quantiser kind 5, 3 is kind 6) at each number of levels and
entropy-coded with the shipped coder; prints the mean bytes (quantiser parameters plus payload,
without the blob's header and restoration filter, which are the same for both) and the latent's
RMS error, and each depth's change in bytes against the first. The decoder is not run: equal
latent error is the same picture (rate_points.py --haar-levels decodes and scores it).
``--nested-max`` lets nested levels be used above ``quant.NESTED_MAX_LEVELS``.
docs/BENCHMARKS.md records the outcome.
"""

from __future__ import annotations

import argparse

import numpy as np
from restoration_filter import SHARED  # run from benchmarks/

from sdfs.codec import Codec, CodecConfig, ImageData, entropy, load_model, quant, read_image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--levels", default="3,4,5,6,7")
    parser.add_argument("--haar-levels", default="2,3")
    parser.add_argument("--nested-max", type=int, default=quant.NESTED_MAX_LEVELS)
    args = parser.parse_args()
    quant.NESTED_MAX_LEVELS = args.nested_max  # read by make_quantizer
    model = load_model("madebyollin/taesd3", device="cpu")
    depths = [int(d) for d in args.haar_levels.split(",")]
    levels = [int(v) for v in args.levels.split(",")]
    sizes = {(n, d): [] for n in levels for d in depths}
    errors = {(n, d): [] for n in levels for d in depths}
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]
    for path in files:
        image = ImageData(read_image(path).rgb())
        latent = Codec(model)._encode_tensors([Codec._to_tensor(image.rgb())])[0]
        for n in levels:
            for depth in depths:
                q = Codec(model, CodecConfig(levels=n, haar_levels=depth)).quantizer.quantize(latent)
                sizes[n, depth].append(len(q.params_bytes()) + len(entropy.encode(q.symbols, q.levels)))
                errors[n, depth].append(float(np.sqrt(np.mean((q.dequantize() - latent) ** 2))))
        print(f"{path.name}: " + "  ".join(f"{n}L {'/'.join(str(sizes[n, d][-1]) for d in depths)}" for n in levels),
              flush=True)
    print(f"{len(files)} Kodak photos, whole, madebyollin/taesd3 (sdfs encoder v2), coder {entropy.CONTEXT}: "
          f"mean bytes / latent RMS error, Haar levels {args.haar_levels}")
    for n in levels:
        first = np.mean(sizes[n, depths[0]])
        cells = "  ".join(f"{d}: {np.mean(sizes[n, d]):7.0f} B / {np.mean(errors[n, d]):.4f} "
                          f"({100 * (np.mean(sizes[n, d]) / first - 1):+.2f} %)" for d in depths)
        print(f"  {n} levels  {cells}")


if __name__ == "__main__":
    main()
