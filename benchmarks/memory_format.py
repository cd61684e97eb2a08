"""Speed of the TAESD encoder and decoder on the CPU with NCHW against NHWC (channels_last) tensors.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python memory_format.py --rounds 3
    ... memory_format.py --rounds 10 --device cuda     # fp16 on a GPU, where sdfs keeps NCHW so far

One model, one Kodak photo (768x512); each round times the encoder, the decoder and one
refinement step (decoder forward and backward, what each step of ``--effort`` costs) in both
layouts, alternating, so both see the same machine load. Prints the median seconds and the ratio
NCHW / NHWC, and the largest difference between the two layouts' outputs. sdfs uses NHWC on the
CPU since 2026-11-27 (``LatentModel.memory_format``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from restoration_filter import SHARED  # run from benchmarks/

from sdfs.codec import Codec, load_model, read_image

LAYOUTS = {"NCHW": torch.contiguous_format, "NHWC": torch.channels_last}


def use_layout(model, layout: torch.memory_format) -> None:
    model.memory_format = layout
    model.vae.to(memory_format=layout)


def seconds(fn, device: torch.device) -> float:
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def refinement_step(grad_decoder, latent: torch.Tensor) -> None:
    z = latent.clone().requires_grad_(True)
    grad_decoder(z).square().mean().backward()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image", default="kodim23.png")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model = load_model("madebyollin/taesd", device=args.device)
    photo = Codec._to_tensor(read_image(SHARED / "data" / "kodak" / args.image).rgb())
    latent = model.encode(photo).clone()
    grad_decoders = {}
    steps = {"encode": lambda name: model.encode(photo), "decode": lambda name: model.decode(latent),
             "refinement step": lambda name: refinement_step(grad_decoders[name], latent)}
    times = {(step, layout): [] for step in steps for layout in LAYOUTS}
    outputs = {}
    for layout_name, layout in LAYOUTS.items():  # warm up both, and keep their outputs
        use_layout(model, layout)
        grad_decoders[layout_name] = model.decode_with_grad()  # a float32 copy on a GPU: made once per layout
        refinement_step(grad_decoders[layout_name], latent)
        outputs[layout_name] = (model.encode(photo), model.decode(latent))
    for _ in range(args.rounds):
        for layout_name, layout in LAYOUTS.items():
            use_layout(model, layout)
            for step, fn in steps.items():
                times[(step, layout_name)].append(seconds(lambda: fn(layout_name), model.device))
    where = torch.cuda.get_device_name() if model.device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"{args.image}, {where}, {model.dtype}, median of {args.rounds} rounds")
    for step in steps:
        nchw, nhwc = (statistics.median(times[(step, name)]) for name in LAYOUTS)
        print(f"  {step:16s} NCHW {nchw:6.2f} s  NHWC {nhwc:6.2f} s  ratio {nchw / nhwc:.2f}x")
    latent_gap = (outputs["NCHW"][0] - outputs["NHWC"][0]).abs().max().item()
    image_gap = (outputs["NCHW"][1] - outputs["NHWC"][1]).abs().max().item()  # float32 outputs on every device
    print(f"  largest difference between layouts: latent {latent_gap:.2e}, image {image_gap:.2e} (of 2.0 full scale)")


if __name__ == "__main__":
    main()
