"""Average a training run's checkpoints (weight averaging, as in stochastic weight averaging).

Checkpoints of one fine-tuning run late in its learning-rate schedule lie in one basin; their mean is often a
better pair than any of them (judge it with ``judge_checkpoints.py``: for run M it was not, docs/BENCHMARKS.md).
Writes the mean encoder and decoder in ``finetune_encoder.py``'s format, tagged as sdfs expects (the decoder with
the fingerprint of the decoder it replaces, the encoder with the mean decoder's).

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python average_checkpoints.py \
        --model madebyollin/taesd3 --out mean.safetensors --out-decoder mean_decoder.safetensors \
        /tmp/runM/enc_step4500.safetensors:/tmp/runM/dec_step4500.safetensors ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sdfs.codec import load_model
from sdfs.codec.models import load_decoder_weights, read_weights, save_decoder, save_encoder


def mean_state(paths: list[Path]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The mean of these weights files' tensors (float32), and the first file's metadata."""
    states = [read_weights(p) for p in paths]
    if any(set(s[0]) != set(states[0][0]) for s in states):
        raise SystemExit(f"{', '.join(map(str, paths))}: not checkpoints of one network (their tensors differ)")
    return {k: torch.stack([s[0][k] for s in states]).mean(0) for k in states[0][0]}, states[0][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="ENCODER:DECODER weights files")
    parser.add_argument("--model", default="madebyollin/taesd3")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--out-decoder", type=Path, required=True)
    args = parser.parse_args()
    pairs = [spec.split(":") for spec in args.checkpoints]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit("each checkpoint is ENCODER:DECODER")
    model = load_model(args.model, device="cpu", dtype=torch.float32, tuned_encoder=False, tuned_decoder=False)
    encoder_state, _ = mean_state([Path(e) for e, _ in pairs])
    decoder_state, decoder_metadata = mean_state([Path(d) for _, d in pairs])
    blocks = load_decoder_weights(model.vae.decoder, decoder_state, decoder_metadata)
    save_decoder(model.vae.decoder, decoder_metadata["replaces_sha256"], model.family.name, args.out_decoder, blocks)
    model.vae.encoder.load_state_dict(encoder_state)
    save_encoder(model.vae.encoder, model, args.out, model.vae.decoder)  # after save_decoder: tagged as written
    print(f"mean of {len(pairs)} checkpoints -> {args.out}, {args.out_decoder}")


if __name__ == "__main__":
    main()
