"""Fine-tune a TAESD encoder for the TAESD decoder that reads sdfs blobs (``--model``: TAESD, TAESD3, ...).

TAESD's encoder was distilled to imitate the SD VAE's latents, not to give its own small
decoder the best picture. This trains it, with the decoder frozen, to minimise what sdfs's
refinement minimises (squared error + 0.1 x (1 - SSIM)) on the decoded image of a latent
that carries the uniform quantisation noise of a 4-5 bit grid. ``load_model`` uses
``sdfs/codec/weights/taesd_encoder_sdfs_v3.safetensors`` for ``madebyollin/taesd``: v2 (below),
fine-tuned with ``--rate`` (at the end). docs/BENCHMARKS.md has the measurements.

No Kodak image is used for training or for choosing a checkpoint (Kodak is the test set). The
training photos are the sample photos bundled with scikit-image (``--data``), ../shared/data/awkward's
photos, and those bundled with scikit-learn, mahotas, PyWavelets and matplotlib (``--extra``);
``--val`` holds three of them out to pick the checkpoint. The v2 weights:

    pip download --no-deps --only-binary=:all: scikit-image==0.26.0 scikit-learn==1.9.1 mahotas==1.4.19 \
        pywavelets==1.9.0 -d /tmp/sk && cd /tmp/sk && unzip -q scikit_image-*.whl 'skimage/data/*'
    mkdir extra && unzip -jq scikit_learn-*.whl 'sklearn/datasets/images/*.jpg' -d extra
    unzip -jq mahotas-*.whl 'mahotas/demos/data/DepartmentStore.jpg' 'mahotas/demos/data/luispedro.jpg' -d extra
    unzip -jq pywavelets-*.whl 'pywt/data/aero.npz' -d extra
    cp <venv>/lib/python3.*/site-packages/matplotlib/mpl-data/sample_data/grace_hopper.jpg extra/
    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 python benchmarks/finetune_encoder.py \
        --data /tmp/sk/skimage/data --extra /tmp/sk/extra --val coffee.png,flower.jpg,DepartmentStore.jpg \
        --device cuda --batch 16 --crop 256 --lr 2e-4 --steps 842 --cosine \
        --out v2.safetensors

(An H200: 40 s; the run used ``--seconds 100``, which set 842 steps from the speed of the first
20.) The first weights (v1) were 300 steps of 8 crops of 128 px at a constant lr 1e-4 on the
skimage and awkward photos alone, 19 minutes on 2 CPU cores.

``--rate`` adds a rate term: that weight times the estimated bits per pixel of the noisy latent
(``estimated_bpp``), so the encoder trades bytes for distortion as the bench does. v3, the shipped
sd1 encoder (23 minutes on 2 CPU cores):

    python benchmarks/finetune_encoder.py --init v2.safetensors --data /tmp/sk/skimage/data --extra /tmp/sk/extra \
        --val coffee.png,flower.jpg,DepartmentStore.jpg --bits 4,5 --rate 0.05 --batch 8 --crop 128 \
        --lr 5e-5 --steps 240 --cosine --out sdfs/codec/weights/taesd_encoder_sdfs_v3.safetensors

The first TAESD3 encoder, v1 (four such runs side by side in one H200 call, rates 0 / 0.03 / 0.1 / 0.3;
0.03 kept, its best held-out checkpoint at step 700):

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 python benchmarks/finetune_encoder.py --model madebyollin/taesd3 \
        --data /tmp/sk/skimage/data --extra /tmp/sk/extra --val coffee.png,flower.jpg,DepartmentStore.jpg \
        --bits 2,3,4 --rate 0.03 --device cuda --batch 16 --crop 256 --lr 1e-4 --seconds 200 --out v1.safetensors

``--rotation N`` trains with the noise of the rotated quantiser sdfs uses for sd3 (each photo's principal
components on their own steps, ``RotatedGrid``) and estimates the rate on the components. The second TAESD3
encoder, ``taesd3_encoder_sdfs_v2.safetensors`` (shipped from 2026-11-27 to 12-06), is v1 after two such runs of 300 steps on
2 CPU cores (20 minutes each; the second's best held-out checkpoint, at its step 100):

    python benchmarks/finetune_encoder.py --model madebyollin/taesd3 --init v1.safetensors --data /tmp/sk/skimage/data \
        --extra /tmp/sk/extra --val coffee.png,flower.jpg,DepartmentStore.jpg --levels 4,5,6,8 --rotation 1 \
        --rate 0.03 --batch 8 --crop 128 --lr 5e-5 --steps 300 --cosine --out a.safetensors
    python benchmarks/finetune_encoder.py ... --init a.safetensors --lr 1e-4 --seed 1 \
        --out sdfs/codec/weights/taesd3_encoder_sdfs_v2.safetensors

``--haar-levels 3`` trains with the noise of the quantiser sd3 photos get since 2026-12-05 (``HaarGrid``: the components
as Haar bands, two more levels nested in LL, the details on a coarser step) and estimates the rate band by band
(``sdfs.codec.optimize.band_bits``); ``--rounding F`` decodes the rounded bands on that share of the steps. The shipped
TAESD3 encoder, ``taesd3_encoder_sdfs_v3.safetensors``, is v2 after one such run decoding rounded bands on every step (20
minutes on 2 CPU cores beside a second run; of four variants the best on the held-out photos, by the objective and by
the real codec's BD-rate):

    python benchmarks/finetune_encoder.py --model madebyollin/taesd3 --init taesd3_encoder_sdfs_v2.safetensors \
        --data /tmp/sk/skimage/data --extra /tmp/sk/extra --val coffee.png,flower.jpg,DepartmentStore.jpg \
        --levels 3,4,6,8 --rotation 1 --haar-levels 3 --rounding 1 --rate 0.03 --batch 8 --crop 128 --lr 5e-5 \
        --steps 300 --cosine --out sdfs/codec/weights/taesd3_encoder_sdfs_v3.safetensors

(v2 is ``git show caa9dbd:sdfs/codec/weights/taesd3_encoder_sdfs_v2.safetensors``, v3 is in the commit before
``taesd3_encoder_sdfs_v4.safetensors`` was added, v4 in the commit before ``taesd3_encoder_sdfs_v5.safetensors``, and v5
in the commit before ``taesd3_encoder_sdfs_v6.safetensors``, and v6 in the commit before
``taesd3_encoder_sdfs_v7.safetensors``.)

``--train both`` trains the decoder too (``--train decoder``: it alone), from TAESD3's or ``--init-decoder``'s weights,
and ``--out-decoder`` writes it tagged with the fingerprint of the decoder it replaces (``save_decoder``); the encoder
is then tagged with the tuned decoder's. The first TAESD3 decoder, ``taesd3_decoder_sdfs_v1.safetensors``, and
encoder v4 are v3 and TAESD3's decoder after two such runs on 2 CPU cores (12 and 25 minutes, two runs at a time;
of four variants the best on the held-out photos, by the objective and by the real codec's BD-rate; the logs are in
benchmarks/results/finetune_taesd3_decoder_2026-12-06.txt):

    python benchmarks/finetune_encoder.py --model madebyollin/taesd3 --init taesd3_encoder_sdfs_v3.safetensors \
        --data /tmp/sk/skimage/data --extra /tmp/sk/extra --extra /tmp/sk/extra2 \
        --val coffee.png,flower.jpg,DepartmentStore.jpg --levels 3,4,6,8 --rotation 1 --haar-levels 3 --rounding 1 \
        --rate 0.03 --batch 8 --crop 128 --lr 1e-4 --steps 300 --cosine --train both --out b.safetensors \
        --out-decoder b_decoder.safetensors
    python benchmarks/finetune_encoder.py ... --init b.safetensors --init-decoder b_decoder.safetensors --steps 600 \
        --seed 1 --out sdfs/codec/weights/taesd3_encoder_sdfs_v4.safetensors \
        --out-decoder sdfs/codec/weights/taesd3_decoder_sdfs_v1.safetensors

The pair shipped on 2026-12-06, decoder v2 and encoder v5, is v1 and v4 after two more runs with the 23 wallpaper
photos below and ``--bf16`` (35 and 25 minutes on 2 CPU cores; logs in
benchmarks/results/finetune_taesd3_decoder_v2_2026-12-06.txt):

    python benchmarks/finetune_encoder.py --model madebyollin/taesd3 --init taesd3_encoder_sdfs_v4.safetensors \
        --init-decoder sdfs/codec/weights/taesd3_decoder_sdfs_v1.safetensors --data /tmp/sk/skimage/data \
        --extra /tmp/sk/extra --extra /tmp/sk/extra2 --extra /tmp/sk/extra3 \
        --val coffee.png,flower.jpg,DepartmentStore.jpg --levels 3,4,6,8 --rotation 1 --haar-levels 3 --rounding 1 \
        --rate 0.03 --batch 8 --crop 128 --lr 2e-4 --steps 3000 --cosine --train both --bf16 --out f.safetensors \
        --out-decoder f_decoder.safetensors
    python benchmarks/finetune_encoder.py ... --init f.safetensors --init-decoder f_decoder.safetensors --lr 1e-4 \
        --steps 2000 --seed 1 --out sdfs/codec/weights/taesd3_encoder_sdfs_v5.safetensors \
        --out-decoder sdfs/codec/weights/taesd3_decoder_sdfs_v2.safetensors

The pair shipped early on 2026-12-07, decoder v3 and encoder v6, is v2 and v5 after one more run with 13 more photos
(``extra4``, below), 6000 steps at lr 1.5e-4 (74 minutes on 2 CPU cores; its best held-out checkpoint, at step 4900;
log in benchmarks/results/finetune_taesd3_decoder_v3_2026-12-07.txt):

    python benchmarks/finetune_encoder.py --model madebyollin/taesd3 --init taesd3_encoder_sdfs_v5.safetensors \
        --init-decoder sdfs/codec/weights/taesd3_decoder_sdfs_v2.safetensors --data /tmp/sk/skimage/data \
        --extra /tmp/sk/extra --extra /tmp/sk/extra2 --extra /tmp/sk/extra3 --extra /tmp/sk/extra4 \
        --val coffee.png,flower.jpg,DepartmentStore.jpg --levels 3,4,6,8 --rotation 1 --haar-levels 3 --rounding 1 \
        --rate 0.03 --batch 8 --crop 128 --lr 1.5e-4 --steps 6000 --cosine --train both --bf16 --seed 2 --write-best \
        --out sdfs/codec/weights/taesd3_encoder_sdfs_v6.safetensors \
        --out-decoder sdfs/codec/weights/taesd3_decoder_sdfs_v3.safetensors

The shipped pair, decoder v4 and encoder v7, is v3 and v6 after one more run with 30 more photos (``extra5``, below;
94 training photos), 5500 steps at lr 1e-4 after a 200-step warm-up (73 minutes on 2 CPU cores; its best held-out
checkpoint, at step 4700, which was also the best of the checkpoints ``judge_checkpoints.py`` judged through the real
codec; log in benchmarks/results/finetune_taesd3_decoder_v4_2026-12-07.txt):

    python benchmarks/finetune_encoder.py --model madebyollin/taesd3 --init taesd3_encoder_sdfs_v6.safetensors \
        --init-decoder sdfs/codec/weights/taesd3_decoder_sdfs_v3.safetensors --data /tmp/sk/skimage/data \
        --extra /tmp/sk/extra --extra /tmp/sk/extra2 --extra /tmp/sk/extra3 --extra /tmp/sk/extra4 \
        --extra /tmp/sk/extra5 --val coffee.png,flower.jpg,DepartmentStore.jpg --levels 3,4,6,8 --rotation 1 \
        --haar-levels 3 --rounding 1 --rate 0.03 --batch 8 --crop 128 --lr 1e-4 --warmup 200 --steps 5500 --cosine \
        --train both --bf16 --seed 5 --write-best --save-every 500 \
        --out sdfs/codec/weights/taesd3_encoder_sdfs_v7.safetensors \
        --out-decoder sdfs/codec/weights/taesd3_decoder_sdfs_v4.safetensors

``--extra`` may be given more than once. Nine more photos (four with faces) come bundled with other packages;
the runs of 2026-12-06 that tried them are in benchmarks/results/finetune_taesd3_v3_more_2026-12-06.txt:

    mkdir extra2 && pip download --no-deps scipy==1.9.3 imgaug==0.4.0 ultralytics==8.4.190 insightface==2.1 \
        pyiqa==0.1.16 -d .
    unzip -jq imgaug-*.whl imgaug/quokka.jpg -d extra2 && unzip -jq insightface-*.whl insightface/data/images/t1.jpg -d extra2
    unzip -jq ultralytics-*.whl 'ultralytics/assets/*.jpg' -d extra2
    unzip -jq pyiqa-*.whl 'tests/test_efficiency_img_dir/*.jpg' -d extra2     # not ResultsCalibra/: those are Kodak
    unzip -jq scipy-*.whl scipy/misc/face.dat && python -c "import bz2, numpy, PIL.Image; PIL.Image.fromarray(
        numpy.frombuffer(bz2.decompress(open('face.dat', 'rb').read()), numpy.uint8).reshape(768, 1024, 3)).save('extra2/raccoon.png')"

``benchmarks/training_photos.sh /tmp/sk`` does all of the above, and adds ``/tmp/sk/extra3``: 23 photographs among
Debian's MATE, Lomiri and Plasma wallpapers, shrunk to 1024 px, and ``/tmp/sk/extra4``: 13 more, from Lomiri's 16.04
wallpapers. ``--write-best`` writes each new best held-out checkpoint as it comes, so that a long run stopped early
keeps it. ``--bf16`` runs the networks under bfloat16 autocast
(the losses, the quantiser and the held-out checks stay float32): on the 2-core development machine (AVX512-BF16) a
step of 8 crops of 128 px through TAESD3's encoder and decoder takes 0.6 s instead of 1.2 s, at the same loss.

``--rate`` also takes one weight per level (``--rate 0.38,0.19,0.075,0.032`` with ``--levels 3,4,6,8``: each level's
price of a bit as ``rate_slopes.py`` measures it; tried on 2026-12-07, not kept). ``--warmup N`` raises the learning
rate over the first N steps. ``--decoder-blocks N`` (with ``--train decoder/both``) inserts N residual blocks in the
decoder at latent resolution, starting as the identity (``sdfs.codec.models.add_latent_blocks``, at ``--new-lr``);
``--out-decoder`` records them, and sdfs inserts them again when it loads the file. ``--save-every N`` also writes
the weights every N steps (``OUT_stepN.safetensors``, and the decoder's), for ``judge_checkpoints.py`` to judge through
the real codec: near convergence the held-out objective is a poor judge. ``/tmp/sk/extra5`` (30 more photos, from
LXQt's wallpapers and OpenCV's documentation) is ``training_photos.sh``'s since 2026-12-07, and ``/tmp/sk/extra6``
(5 more, the photographs KDE's Palapeli ships as puzzles) and ``/tmp/sk/extra7`` (13 more, from digiKam's, GIMP's,
Hugin's and Kivy's documentation and examples) since later that day; no run has trained on them yet (112 photos
with them). On a CPU without AVX512-BF16 or AMX ``--bf16`` is refused: bfloat16 is emulated there, and a 2-core AMD
EPYC with AVX2 took 4.1 s a step in float32.
"""

from __future__ import annotations

import argparse
import copy
import functools
import math
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from sdfs.codec import load_model, quant, wavelet
from sdfs.codec.models import (add_latent_blocks, decoder_fingerprint, identity_blocks, load_decoder_weights,
                               load_encoder_weights, read_weights, save_decoder, save_encoder)
from sdfs.codec.optimize import Objective, band_bits, estimated_bits
from sdfs.codec.quant import straight_through_round
from sdfs.codec.rotations import rotation_matrix

SHARED = Path(os.environ.get("SDFS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png",
                  "rocket.jpg", "hubble_deep_field.jpg", "camera.png", "brick.png", "grass.png", "gravel.png",
                  "coins.png", "color.png")
AWKWARD_PHOTOS = ("cmyk_Channel_digital_image_CMYK_color.jpg", "gray_concert.jpg", "orient6_Landscape_6.jpg")
PHOTO_SUFFIXES = {".png", ".jpg", ".jpeg", ".npz"}


def load_photo(path: Path) -> torch.Tensor:
    if path.suffix == ".npz":  # PyWavelets ships its photos as grey arrays
        with np.load(path) as arrays:
            grey = arrays[arrays.files[0]].astype(np.uint8)
        rgb = np.repeat(grey[..., None], 3, axis=2)
    else:
        with Image.open(path) as im:
            rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB")).copy()
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1


def photo_files(data: Path, extra: list[Path]) -> list[Path]:
    files = [data / n for n in SKIMAGE_PHOTOS] + [SHARED / "data" / "awkward" / n for n in AWKWARD_PHOTOS]
    for folder in extra:
        files += sorted(f for f in folder.iterdir() if f.suffix.lower() in PHOTO_SUFFIXES)
    return files


def random_crops(images: list[torch.Tensor], count: int, crop: int, rng: random.Random,
                 rescale: float = 1.0) -> torch.Tensor:
    """Random crops, mirrored half the time; with ``rescale`` < 1 some are first shrunk by up to that factor."""
    out = []
    for _ in range(count):
        image = rng.choice(images)
        if rescale < 1 and rng.random() < 0.5:
            factor = rng.uniform(rescale, 1.0)
            _, height, width = image.shape
            if min(height, width) * factor >= crop:
                size = (round(height * factor), round(width * factor))
                image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0]
        _, height, width = image.shape
        y, x = rng.randrange(height - crop + 1), rng.randrange(width - crop + 1)
        piece = image[:, y:y + crop, x:x + crop]
        out.append(piece.flip(-1) if rng.random() < 0.5 else piece)
    return torch.stack(out)


def grid(z: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, step) of a uniform grid of ``levels`` over each image's and channel's range, as sdfs's quantiser.

    The gradient flows through the range: held constant, it let the encoder widen its ranges unopposed
    (every step, and so every value's error, grows with them) and training diverged within 40 steps on
    TAESD3 at 2-4 bits. v1 and v2 were trained with one constant range over the whole batch."""
    low, high = z.amin(dim=(2, 3), keepdim=True), z.amax(dim=(2, 3), keepdim=True)
    return low, (high - low).clamp_min(1e-8) / (levels - 1)


def with_quantisation_noise(z: torch.Tensor, levels: int) -> torch.Tensor:
    """Add the error of rounding to the grid of ``levels`` (uniform noise of one step)."""
    _, step = grid(z, levels)
    return z + (torch.rand_like(z) - 0.5) * step


def quantised(z: torch.Tensor, levels: int) -> torch.Tensor:
    low, step = grid(z, levels)
    return low + torch.round((z - low) / step) * step


class RotatedGrid:
    """sdfs's rotated quantiser (``quant.RotatedQuantizer``) in torch: each image's principal components on steps
    ~ span ** STEP_EXPONENT whose geometric mean is the channels' mean step. Gradients flow through the spans,
    as through ``grid``'s range."""

    def __init__(self, rotation: int, channels: int, device: str) -> None:
        self.matrix = torch.from_numpy(rotation_matrix(rotation, channels).astype(np.float32)).to(device)

    def components(self, z: torch.Tensor) -> torch.Tensor:
        return torch.einsum("kc,bchw->bkhw", self.matrix, z)

    def channels(self, components: torch.Tensor) -> torch.Tensor:
        return torch.einsum("kc,bkhw->bchw", self.matrix, components)

    def steps(self, z: torch.Tensor, components: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, step) per image and component of latents ``z`` whose components are given, shaped (B, C, 1, 1)."""
        channel_step = (z.amax(dim=(2, 3)) - z.amin(dim=(2, 3))).mean(dim=1).clamp_min(1e-3) / (levels - 1)
        low = components.amin(dim=(2, 3), keepdim=True)
        spans = (components.amax(dim=(2, 3), keepdim=True) - low).clamp_min(1e-3)
        steps = (spans / spans.mean(dim=1, keepdim=True)) ** quant.STEP_EXPONENT
        steps = steps * channel_step[:, None, None, None] / torch.exp(torch.log(steps).mean(dim=1, keepdim=True))
        return low, steps

    def noisy(self, z: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(latent with the rounding error of the components' grids, its codes in steps for the rate estimate)."""
        components = self.components(z)
        low, step = self.steps(z, components, levels)
        components = components + (torch.rand_like(z) - 0.5) * step
        return self.channels(components), (components - low) / step

    def quantised(self, z: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
        components = self.components(z)
        low, step = self.steps(z, components, levels)
        codes = torch.round((components - low) / step)
        return self.channels(low + codes * step), codes

    def bpp(self, codes: torch.Tensor) -> torch.Tensor:
        return codes_bpp(codes)


class HaarGrid(RotatedGrid):
    """sdfs's rotated Haar quantiser (``quant.DeepHaarQuantizer`` at ``depth`` 2) in torch: each image's components,
    on the rotated grid's steps, split into Haar bands with ``depth`` more levels nested in LL; LL and its nested
    details on the component's step, LH, HL and HH on ``quant.DETAIL_GAIN`` times it. On a ``rounding`` share of
    the steps the decoder sees the bands rounded (the gradient passing straight through) instead of carrying uniform
    noise: the coarse details round mostly to zero, which noise does not show. The rate estimate's codes carry noise."""

    def __init__(self, rotation: int, channels: int, device: str, depth: int = 2, rounding: float = 0.0) -> None:
        super().__init__(rotation, channels, device)
        self.depth, self.rounding = depth, rounding
        self.gains = torch.tensor([1.0] + [quant.DETAIL_GAIN] * 3, device=device)[None, :, None, None]

    def bands(self, z: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes in band steps, (B x C, 4, bh, bw); the band steps)."""
        components = self.components(z)
        _, step = self.steps(z, components, levels)
        batch, channels, height, width = components.shape
        bands = wavelet.forward(components.reshape(batch * channels, height, width))
        if self.depth:
            bands = torch.cat([wavelet.nest(bands[:, 0], self.depth)[:, None], bands[:, 1:]], 1)
        band_step = step.reshape(-1, 1, 1, 1) * self.gains
        return bands / band_step, band_step

    def latent(self, codes: torch.Tensor, band_step: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        values = codes * band_step
        if self.depth:
            values = torch.cat([wavelet.unnest(values[:, 0], self.depth)[:, None], values[:, 1:]], 1)
        return self.channels(wavelet.inverse(values, *shape[2:]).reshape(shape))

    def noisy(self, z: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
        codes, band_step = self.bands(z, levels)
        noisy = codes + torch.rand_like(codes) - 0.5
        rounded = float(torch.rand(())) < self.rounding
        return self.latent(straight_through_round(codes) if rounded else noisy, band_step, z.shape), noisy

    def quantised(self, z: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
        codes, band_step = self.bands(z, levels)
        codes = torch.round(codes)
        return self.latent(codes, band_step, z.shape), codes

    def bpp(self, codes: torch.Tensor, factor: int = 8) -> torch.Tensor:
        """``band_bits`` of (B x C, 4, bh, bw) codes, per pixel of the B images."""
        planes, _, height, width = codes.shape
        ll, details = codes[:, 0], codes[:, 1:].reshape(-1, height, width)
        bits = band_bits(torch.cat([ll, details]), planes, self.depth)
        images = planes // self.matrix.shape[0]
        return bits / (images * (2 * height) * (2 * width) * factor ** 2)


def codes_bpp(codes: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """``estimated_bits`` of (B, C, h, w) codes in quantiser steps, per pixel."""
    batch, channels, height, width = codes.shape
    return estimated_bits(codes.reshape(batch * channels, height, width)) / (batch * height * width * factor ** 2)


def estimated_bpp(z: torch.Tensor, levels: int, grid_of: torch.Tensor | None = None, factor: int = 8) -> torch.Tensor:
    """Differentiable estimate of the context coder's bits per pixel for latents ``z`` on the grid of ``levels``
    (``sdfs.codec.optimize.estimated_bits``). Give ``z`` with its quantisation noise, as the decoder sees it,
    and the latent whose range sets the grid as ``grid_of``."""
    low, step = grid(z if grid_of is None else grid_of, levels)
    return codes_bpp((z - low) / step, factor)


@torch.no_grad()
def validation(encoder, decoder, photos: list[torch.Tensor], levels: list[int], objective: Objective,
               rate: dict[int, float], rotated: RotatedGrid | None = None) -> tuple[float, float, float]:
    """(objective, PSNR, estimated bpp), means over each held-out photo's latent rounded to each grid of ``levels``
    (the channels', or ``rotated``'s components'); the objective is what training minimises (distortion + the level's
    ``rate`` x estimated bpp)."""
    encoder.eval()
    losses, psnrs, bpps = [], [], []
    for x in photos:
        z = encoder(x[None])
        for n in levels:
            if rotated:
                latent, codes = rotated.quantised(z, n)
                bpp = float(rotated.bpp(codes))
            else:
                latent = quantised(z, n)
                bpp = float(estimated_bpp(latent, n))
            image = decoder(latent).clamp(-1, 1)
            losses.append(float(objective.distortion(image, x[None], None)) + rate[n] * bpp)
            psnrs.append(float(10 * torch.log10(4 / (image - x[None]).square().mean())))
            bpps.append(bpp)
    encoder.train()
    return tuple(sum(v) / len(v) for v in (losses, psnrs, bpps))


def rate_weights(spec: str, levels: list[int]) -> dict[int, float]:
    """Each level's rate weight from ``--rate``: one weight for all levels, or one per level in their order."""
    weights = [float(w) for w in spec.split(",")]
    if len(weights) == 1:
        weights = weights * len(levels)
    if len(weights) != len(levels):
        raise SystemExit(f"--rate {spec}: {len(weights)} weights for {len(levels)} levels ({levels})")
    return dict(zip(levels, weights))


def snapshot(encoder, decoder) -> tuple[dict, dict]:
    return ({k: v.clone() for k, v in encoder.state_dict().items()},
            {k: v.clone() for k, v in decoder.state_dict().items()})


def multiple_of_8(x: torch.Tensor) -> torch.Tensor:
    _, height, width = x.shape
    return x[:, :height // 8 * 8, :width // 8 * 8]


def add_blocks(encoder, count: int) -> list[torch.nn.Parameter]:
    """Insert ``count`` ``identity_blocks`` before the encoder's last conv; their parameters."""
    layers = list(encoder.layers)
    blocks = identity_blocks(layers[-1].in_channels, count, layers[-1].weight.device)
    encoder.layers = torch.nn.Sequential(*layers[:-1], *blocks, layers[-1])
    return [p for block in blocks for p in block.parameters()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True, help="scikit-image's skimage/data folder")
    parser.add_argument("--extra", type=Path, action="append", default=[],
                        help="a folder of more training photos (may be given again)")
    parser.add_argument("--val", default="", help="comma-separated file names held out to pick the checkpoint")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seconds", type=float, help="train for this long instead (implies --cosine)")
    parser.add_argument("--cosine", action="store_true", help="decay the learning rate to 0 on a cosine")
    parser.add_argument("--warmup", type=int, default=0,
                        help="raise the learning rate linearly over this many first steps (Adam's first steps "
                             "from trained weights are full-size and set a fine-tuned pair back)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--bits", default="4,5")
    parser.add_argument("--levels", help="comma-separated levels to train at (instead of --bits)")
    parser.add_argument("--rotation", type=int, default=0,
                        help="train with the noise of this rotation's quantiser (sdfs.codec.rotations; 0: channels)")
    parser.add_argument("--haar-levels", type=int, default=0,
                        help="with --rotation: the noise of the rotated Haar quantiser with this many levels (0: none)")
    parser.add_argument("--rounding", type=float, default=0.0,
                        help="with --haar-levels: the share of steps that decode the rounded bands (straight-through) "
                             "instead of noisy ones")
    parser.add_argument("--structure", type=float, default=0.1)
    parser.add_argument("--rate", default="0",
                        help="weight of the estimated bits per pixel in the loss (a rate-aware encoder); "
                             "comma-separated, one per level: each level's own price of a bit")
    parser.add_argument("--model", default="madebyollin/taesd", help="the TAESD whose decoder the encoder is tuned for")
    parser.add_argument("--rescale", type=float, default=1.0, help="shrink half the crops' photos by up to this")
    parser.add_argument("--init", type=Path, help="start from these encoder weights (default: TAESD's)")
    parser.add_argument("--init-decoder", type=Path, help="start from these decoder weights (an --out-decoder file)")
    parser.add_argument("--extra-blocks", type=int, default=0,
                        help="insert this many identity-initialised blocks at latent resolution (an experiment)")
    parser.add_argument("--decoder-blocks", type=int, default=0,
                        help="insert this many identity-initialised blocks in the decoder at latent resolution "
                             "(add_latent_blocks; with --train decoder/both)")
    parser.add_argument("--new-lr", type=float, default=3e-4, help="learning rate of the inserted blocks")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true",
                        help="run the networks under bfloat16 autocast (twice as fast on CPUs with AVX512-BF16 or "
                             "AMX; refused on CPUs without them, where it is hundreds of times slower)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", choices=("encoder", "decoder", "both"), default="encoder",
                        help="what to train (an experiment: a trained decoder is not what sdfs ships)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--save-every", type=int, default=0, metavar="N",
                        help="also write the weights every N steps, as OUT_stepN.safetensors (and the decoder's)")
    parser.add_argument("--write-best", action="store_true",
                        help="write each new best held-out checkpoint as it comes (a run stopped early keeps it)")
    parser.add_argument("--out-decoder", type=Path, help="where to write the decoder's weights (--train decoder/both)")
    args = parser.parse_args()
    if args.bf16 and args.device == "cpu" and not native_bfloat16():
        parser.error("--bf16: this CPU has neither AVX512-BF16 nor AMX, so bfloat16 is emulated and hundreds of "
                     "times slower than float32 (a 2048x2048 matmul: 0.3 against 142 GFLOPS on a 2-core AMD EPYC "
                     "with AVX2); leave --bf16 out")
    return args


def native_bfloat16() -> bool:
    """Whether this x86 CPU computes in bfloat16 natively (other architectures: assumed so)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def load_photos(args: argparse.Namespace) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(training photos at least one crop in size, held-out photos cut to multiples of 8), on the device."""
    held_out = {n for n in args.val.split(",") if n}
    files = photo_files(args.data, args.extra)
    images = [load_photo(f).to(args.device) for f in files if f.name not in held_out]
    val = [multiple_of_8(load_photo(f)).to(args.device) for f in files if f.name in held_out]
    return [x for x in images if min(x.shape[1:]) >= args.crop], val


def train(args: argparse.Namespace, encoder, decoder, images: list[torch.Tensor], val: list[torch.Tensor],
          added_parameters: list[torch.nn.Parameter] = (), on_best=None, on_save=None) -> None:
    """Adam on the parameters that require grad (``added_parameters`` at --new-lr); leaves the best held-out
    checkpoint loaded (the last without --val). ``on_best(encoder_state, decoder_state)`` is called with each new
    best held-out checkpoint, so that a run stopped early keeps it; ``on_save(step, encoder_state, decoder_state)``
    every --save-every steps, so that checkpoints can be judged through the real codec afterwards."""
    added = {id(p) for p in added_parameters}
    trained = [p for m in (encoder, decoder) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam([{"params": [p for p in trained if id(p) not in added], "base_lr": args.lr},
                                  {"params": [p for p in trained if id(p) in added], "base_lr": args.new_lr}],
                                 lr=args.lr)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"]
    objective = Objective(structure_weight=args.structure)
    levels_list = ([int(n) for n in args.levels.split(",")] if args.levels
                   else [2 ** int(b) for b in args.bits.split(",")])
    rate = rate_weights(args.rate, levels_list)
    channels = decoder.layers[0].in_channels
    rotated = None
    if args.rotation and args.haar_levels:
        rotated = HaarGrid(args.rotation, channels, args.device, args.haar_levels - 1, args.rounding)
    elif args.rotation:
        rotated = RotatedGrid(args.rotation, channels, args.device)
    rng = random.Random(args.seed)
    networks_precision = functools.partial(torch.autocast, torch.device(args.device).type, dtype=torch.bfloat16,
                                           enabled=args.bf16)
    torch.manual_seed(args.seed)
    best = (validation(encoder, decoder, val, levels_list, objective, rate, rotated), 0) if val else None
    if best:
        print(f"start: held-out objective {best[0][0]:.5f} PSNR {best[0][1]:.3f} bpp~{best[0][2]:.3f}", flush=True)
    best_state = snapshot(encoder, decoder)
    start, smoothed, steps, step = time.perf_counter(), None, args.steps, 0
    while step < steps:
        if args.seconds and step == 10:
            warm = time.perf_counter()
        if args.seconds and step == 30:  # timed after 10 warm-up steps (cuDNN's autotuning, allocations)
            now = time.perf_counter()
            steps = max(40, 30 + int((args.seconds - (now - start)) / ((now - warm) / 20)))
            print(f"{steps} steps to fit {args.seconds:.0f} s", flush=True)
        scale = min(1.0, (step + 1) / args.warmup) if args.warmup else 1.0
        if args.seconds or args.cosine:
            scale *= 0.5 * (1 + math.cos(math.pi * min(step / max(steps, 1), 1)))
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * scale
        x = random_crops(images, args.batch, args.crop, rng, args.rescale)
        with networks_precision():
            z = encoder(x).float()
        levels = rng.choice(levels_list)
        if rotated:
            noisy, codes = rotated.noisy(z, levels)
            bpp = rotated.bpp(codes) if rate[levels] else None
        else:
            noisy = with_quantisation_noise(z, levels)
            bpp = estimated_bpp(noisy, levels, z) if rate[levels] else None
        with networks_precision():
            image = decoder(noisy).float()
        loss = objective.distortion(image, x, None)
        if rate[levels]:
            loss = loss + rate[levels] * bpp
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        smoothed = value if smoothed is None else 0.95 * smoothed + 0.05 * value
        step += 1
        if on_save and args.save_every and step % args.save_every == 0:
            on_save(step, *snapshot(encoder, decoder))
        if val and (step % 100 == 0 or step == steps):
            scores = validation(encoder, decoder, val, levels_list, objective, rate, rotated)
            if scores[0] < best[0][0]:
                best, best_state = (scores, step), snapshot(encoder, decoder)
                if on_best:
                    on_best(*best_state)
            print(f"step {step} loss {smoothed:.5f} held-out objective {scores[0]:.5f} PSNR {scores[1]:.3f} "
                  f"bpp~{scores[2]:.3f} (best at {best[1]}) {time.perf_counter() - start:.0f} s", flush=True)
        elif step % 20 == 0 or step == steps:
            print(f"step {step} loss {smoothed:.5f} {time.perf_counter() - start:.0f} s", flush=True)
    if val:
        encoder.load_state_dict(best_state[0])
        decoder.load_state_dict(best_state[1])


def with_suffix(path: Path, suffix: str) -> Path:
    """``a/b.safetensors`` with ``_step500`` -> ``a/b_step500.safetensors``."""
    return path.with_name(path.stem + suffix + path.suffix)


def main() -> None:
    args = parse_args()
    images, val = load_photos(args)
    print(f"{len(images)} training photos, {len(val)} held out", flush=True)
    model = load_model(args.model, device=args.device, dtype=torch.float32, tuned_encoder=False, tuned_decoder=False)
    torch.backends.cudnn.benchmark = True
    encoder, decoder = model.vae.encoder, model.vae.decoder
    stock_decoder = decoder_fingerprint(decoder)
    if args.init:
        load_encoder_weights(encoder, args.init)
    latent_blocks = 0
    if args.init_decoder:
        latent_blocks = load_decoder_weights(decoder, *read_weights(args.init_decoder))
    added = add_blocks(encoder, args.extra_blocks) if args.extra_blocks else []
    if args.decoder_blocks:
        added += add_latent_blocks(decoder, args.decoder_blocks)
        latent_blocks += args.decoder_blocks
    encoder.requires_grad_(args.train != "decoder").train()
    decoder.requires_grad_(args.train != "encoder").train()

    def write(encoder_state: dict, decoder_state: dict, suffix: str = "") -> None:
        """Write these weights to --out and --out-decoder (``suffix`` added to their names), through copies (writing
        rounds the decoder to float16)."""
        trained_encoder, trained_decoder = copy.deepcopy(encoder), copy.deepcopy(decoder)
        trained_encoder.load_state_dict(encoder_state)
        trained_decoder.load_state_dict(decoder_state)
        if args.out_decoder:  # first, so that the encoder is tagged with the decoder as written
            save_decoder(trained_decoder, stock_decoder, model.family.name, with_suffix(args.out_decoder, suffix),
                         latent_blocks)
        if args.train != "decoder":
            save_encoder(trained_encoder, model, with_suffix(args.out, suffix), trained_decoder)

    train(args, encoder, decoder, images, val, added, on_best=write if args.write_best else None,
          on_save=lambda step, *states: write(*states, suffix=f"_step{step}"))
    write(encoder.state_dict(), decoder.state_dict())  # train left the best checkpoint loaded


if __name__ == "__main__":
    main()
