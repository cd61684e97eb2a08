"""Experiment: coder 7's adaptive side information against coder 6's codes, and the weight of its priors.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python side_model_priors.py \
        --images 24 --points 3L,4L,6L,8L [--field-priors 4,8,16 --flag-priors 1,2]
    cd benchmarks && ... side_model_priors.py --model madebyollin/taesd --images 4 --points 3,4,5,6

Rounds the first ``--images`` Kodak photos' latents (sdfs's encoder, effort 0) as the codec does at each rate
point (bits, or levels as ``NL``), then codes the same symbols with coder 6 (``context v6``) and with coder 7
(``context``) at each prior weight (``side_model.FIELD_PRIOR``, ``FLAG_PRIOR``). Prints mean payload bytes (the
entropy-coded symbols and side information, without the container, quantiser and filter) and the change against
coder 6. docs/CODEC.md records the outcome.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from restoration_filter import SHARED  # run from benchmarks/

from sdfs.codec import Codec, CodecConfig, ImageData, entropy, load_model, read_image, side_model
from sdfs.codec.codec import MIN_SIDE
from sdfs.codec.images import pad_to_multiple


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="madebyollin/taesd3")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--points", default="3L,4L,6L,8L", help="bits, or levels as NL")
    parser.add_argument("--field-priors", default=str(side_model.FIELD_PRIOR))
    parser.add_argument("--flag-priors", default=str(side_model.FLAG_PRIOR))
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model, device="cpu")
    points = args.points.split(",")
    settings = [(int(a), int(b)) for a in args.field_priors.split(",") for b in args.flag_priors.split(",")]
    sizes: dict = {(n, s): 0 for n in points for s in ["v6", *settings]}
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]
    for path in files:
        image = ImageData(read_image(path).rgb())
        x = Codec._to_tensor(pad_to_multiple(image.rgb(), model.factor, MIN_SIDE)[0])
        latent = Codec(model)._encode_tensors([x])[0]
        for n in points:
            config = CodecConfig(levels=int(n[:-1])) if n.endswith("L") else CodecConfig(bits=int(n))
            q = Codec(model, config).quantizer.quantize(latent)
            symbols = q.symbols.astype(np.int64)
            sizes[n, "v6"] += len(entropy.encode(symbols, q.levels, entropy.CONTEXT_V6))
            for field, flag in settings:
                side_model.FIELD_PRIOR, side_model.FLAG_PRIOR = field, flag
                data = entropy.encode(symbols, q.levels)
                assert np.array_equal(entropy.decode(data, symbols.shape, q.levels), symbols)
                sizes[n, (field, flag)] += len(data)
        print(path.name, flush=True)
    print(f"{len(files)} Kodak photos, {args.model} (sdfs's encoder), effort 0: mean payload bytes, coder 6 and "
          f"coder 7 (field prior, flag prior)")
    for n in points:
        old = sizes[n, "v6"]
        row = "  ".join(f"{s}: {sizes[n, s] / len(files):.0f} B ({100 * (sizes[n, s] - old) / old:+.2f} %)"
                        for s in settings)
        print(f"  {n:>4}: coder 6 {old / len(files):.0f} B  coder 7 {row}")


if __name__ == "__main__":
    main()
