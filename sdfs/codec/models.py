"""Loading SD latent encoders/decoders and the latent families they speak.

Every latent sdfs stores is in a family's *diffusion space*: the scaled latent that
a diffusion UNet sees. TAESD encoders and decoders work in that space directly
(diffusers' ``AutoencoderTiny`` has ``scaling_factor=1``); the full SD VAE
(``AutoencoderKL``) works on raw latents, so we convert with the family's
scaling and shift factors. That is what makes a latent written by TAESD decodable
by the SD VAE and the other way round.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

log = logging.getLogger(__name__)

# sd3 through sdfs's tuned TAESD3 pair: BD-rate -37 / -33 / -31 % (PSNR / MS-SSIM / SSIMULACRA2) against sd1
# on Kodak (docs/BENCHMARKS.md, "sd3 the default model")
DEFAULT_MODEL = "madebyollin/taesd3"
WEIGHTS = Path(__file__).with_name("weights")
# family -> an encoder sdfs fine-tuned for that family's TAESD decoder (benchmarks/finetune_encoder.py)
TUNED_ENCODERS = {"sd1": "taesd_encoder_sdfs_v3.safetensors", "sd3": "taesd3_encoder_sdfs_v7.safetensors"}
# family -> the TAESD decoders sdfs fine-tuned on coded latents, oldest first. Each replaces only the decoder it was
# tuned from; the newest is installed, and the others are kept beside it for the blobs fitted for them.
TUNED_DECODERS = {"sd3": ("taesd3_decoder_sdfs_v1.safetensors", "taesd3_decoder_sdfs_v2.safetensors",
                           "taesd3_decoder_sdfs_v3.safetensors", "taesd3_decoder_sdfs_v4.safetensors")}


@dataclass(frozen=True)
class LatentFamily:
    """A latent space shared by several models (SD 1.x, SDXL, SD3, FLUX.1)."""

    name: str
    channels: int
    factor: int  # pixels per latent cell along each side
    kl_scaling: float  # AutoencoderKL raw latent -> diffusion space: (z - shift) * scaling
    kl_shift: float
    vae_approx_prefix: str  # file prefix in a ComfyUI/A1111 models/vae_approx folder


FAMILIES: dict[str, LatentFamily] = {
    "sd1": LatentFamily("sd1", 4, 8, 0.18215, 0.0, "taesd"),
    "sdxl": LatentFamily("sdxl", 4, 8, 0.13025, 0.0, "taesdxl"),
    "sd3": LatentFamily("sd3", 16, 8, 1.5305, 0.0609, "taesd3"),
    # FLUX.1 latents (TAEF1) have SD3's shape but another space: without a family of their own a
    # taef1 store would be labelled sd3 and decoded, wrongly, by TAESD3
    "flux": LatentFamily("flux", 16, 8, 0.3611, 0.1159, "taef1"),
}


class ModelError(RuntimeError):
    """A model could not be found or loaded; the message says what to do."""


def get_family(name: str) -> LatentFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ModelError(f"unknown latent family {name!r}; known: {', '.join(FAMILIES)}") from None


def guess_family(name: str, channels: int, kl_scaling: float | None = None) -> LatentFamily:
    """Infer the family from a model name, its channel count and (for KL) its scaling."""
    if kl_scaling is not None:
        for fam in FAMILIES.values():
            if fam.channels == channels and abs(fam.kl_scaling - kl_scaling) < 1e-4:
                return fam
    lowered = name.lower()
    patterns = [("flux", r"taef1|flux"), ("sd3", r"sd3|sd-3|sd_3"), ("sdxl", r"sdxl|xl"), ("sd1", r"taesd|sd-vae|sd1|stable-diffusion-v1")]
    for fam_name, pattern in patterns:
        if re.search(pattern, lowered) and FAMILIES[fam_name].channels == channels:
            return FAMILIES[fam_name]
    for fam in FAMILIES.values():
        if fam.channels == channels:
            log.warning("could not tell the latent family of %s; assuming %s (pass --family)", name, fam.name)
            return fam
    raise ModelError(f"{name}: {channels}-channel latents match no known family ({', '.join(FAMILIES)})")


def pick_device(device: str = "auto") -> torch.device:
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class LatentModel:
    """An encoder/decoder pair speaking one latent family, on one device.

    ``encode`` takes images in [-1, 1] (N, 3, H, W) and returns diffusion-space
    latents; ``decode`` inverts it. Both run without autograd; ``decode_with_grad``
    keeps the graph for encoder-side optimisation (always float32).
    """

    def __init__(self, vae: torch.nn.Module, family: LatentFamily, model_id: str, device: torch.device,
                 dtype: torch.dtype | None = None, tuned_encoder: str | None = None,
                 tuned_decoder: str | None = None,
                 kept_decoders: dict[str | None, torch.nn.Module] | None = None) -> None:
        self.family = family
        self.model_id = model_id
        self.tuned_encoder = tuned_encoder  # the name of sdfs's fine-tuned encoder in use, if any
        self.tuned_decoder = tuned_decoder  # the name of sdfs's fine-tuned decoder in use, if any
        self.device = device
        self.is_kl = type(vae).__name__ == "AutoencoderKL"
        if dtype is None:
            force_upcast = bool(getattr(vae.config, "force_upcast", False)) and self.is_kl
            dtype = torch.float16 if device.type == "cuda" and not force_upcast else torch.float32
        self.dtype = dtype
        # oneDNN runs TAESD 1.1-1.5x faster on NHWC tensors (benchmarks/memory_format.py); the GPU
        # path keeps the layout it was measured with
        self.memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        self.vae = vae.to(device=device, dtype=dtype, memory_format=self.memory_format).eval().requires_grad_(False)
        # where sdfs's tuned decoder replaced the model's own, the decoders blobs were fitted for before it, by the
        # name blobs record (None: the model's own): they still decode with them
        self.kept_decoders = {name: decoder.to(device=device, dtype=dtype, memory_format=self.memory_format)
                              .eval().requires_grad_(False) for name, decoder in (kept_decoders or {}).items()}

    @property
    def encoder_name(self) -> str:
        """What wrote a latent: the model, plus sdfs's fine-tuned encoder where that replaced its own."""
        return f"{self.model_id}+{self.tuned_encoder}" if self.tuned_encoder else self.model_id

    @property
    def decoder_name(self) -> str:
        """What draws the pictures: the model, plus sdfs's fine-tuned decoder where that replaced its own."""
        return f"{self.model_id}+{self.tuned_decoder}" if self.tuned_decoder else self.model_id

    @property
    def channels(self) -> int:
        return self.family.channels

    @property
    def factor(self) -> int:
        return self.family.factor

    def _to_diffusion_space(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.family.kl_shift) * self.family.kl_scaling

    def _from_diffusion_space(self, latent: torch.Tensor) -> torch.Tensor:
        return latent / self.family.kl_scaling + self.family.kl_shift

    def _input(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        return x.to(self.device, dtype or self.dtype).contiguous(memory_format=self.memory_format)

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x = self._input(images)
        if self.is_kl:
            latent = self._to_diffusion_space(self.vae.encode(x).latent_dist.mode())
        else:
            latent = self.vae.encode(x).latents
        return latent.float()

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor, decoder: torch.nn.Module | None = None) -> torch.Tensor:
        """Pictures of ``latents``, drawn by the installed decoder or by ``decoder``, one of ``kept_decoders``."""
        x = self._input(latents)
        image = self._decode(x) if decoder is None else decoder(x)
        return image.float().clamp(-1, 1)

    def decode_with_grad(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """A float32 differentiable decoder (the weights stay frozen)."""
        vae32 = self.vae if self.dtype == torch.float32 else _float_copy(self.vae)

        def run(latents: torch.Tensor) -> torch.Tensor:
            z = self._input(latents, torch.float32)
            if self.is_kl:
                return vae32.decode(self._from_diffusion_space(z)).sample
            return vae32.decode(z).sample

        return run

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        if self.is_kl:
            return self.vae.decode(self._from_diffusion_space(latents)).sample
        return self.vae.decode(latents).sample


def _float_copy(module: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(module).float()


def load_model(spec: str = DEFAULT_MODEL, device: str = "auto", family: str | None = None,
               dtype: torch.dtype | None = None, tuned_encoder: bool = True, tuned_decoder: bool = True) -> LatentModel:
    """Load a model from a hub id, a local diffusers folder, or a vae_approx file pair.

    ``spec`` may be: a hub id (``madebyollin/taesd``, ``stabilityai/sd-vae-ft-mse``), a folder
    with ``config.json``, a ComfyUI/A1111 ``vae_approx`` file (``taesd_encoder.safetensors``;
    its ``_decoder`` partner is found beside it), or a ``vae_approx`` folder plus ``family``.
    With ``tuned_decoder``, a TAESD whose decoder sdfs has fine-tuned on coded latents decodes with
    that one; the latents stay the family's, so any of its decoders still reads every blob. With
    ``tuned_encoder``, a TAESD whose decoder (tuned or not) sdfs has a fine-tuned encoder for
    encodes with that one (docs/BENCHMARKS.md).
    """
    dev = pick_device(device)
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        vae, name = _load_diffusers(str(path)), path.name
    elif path.exists() or _looks_like_path(spec):
        return _load_vae_approx(path, dev, family, dtype, tuned_encoder, tuned_decoder)
    else:
        vae, name = _load_diffusers(spec), spec
    fam = get_family(family) if family else _family_of(vae, name)
    channels = int(vae.config.latent_channels)
    if channels != fam.channels:
        raise ModelError(f"{spec} makes {channels}-channel latents; family {fam.name} has {fam.channels}")
    return _with_tuned_parts(vae, fam, name, dev, dtype, tuned_encoder, tuned_decoder)


def _with_tuned_parts(vae: torch.nn.Module, family: LatentFamily, name: str, device: torch.device,
                      dtype: torch.dtype | None, tuned_encoder: bool, tuned_decoder: bool) -> LatentModel:
    """The model with sdfs's tuned decoder installed, then the tuned encoder (which names the decoder it expects)."""
    decoder, kept = _install_tuned_decoder(vae, family) if tuned_decoder else (None, {})
    encoder = _install_tuned_encoder(vae, family) if tuned_encoder else None
    return LatentModel(vae, family, name, device, dtype, encoder, decoder, kept)


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.endswith((".safetensors", ".pth", ".pt"))


def _family_of(vae: torch.nn.Module, name: str) -> LatentFamily:
    cfg = vae.config
    channels = int(cfg.latent_channels)
    if type(vae).__name__ == "AutoencoderKL":
        return guess_family(name, channels, float(cfg.scaling_factor))
    return guess_family(name, channels)


def _load_diffusers(spec: str) -> torch.nn.Module:
    from diffusers import AutoencoderKL, AutoencoderTiny

    classes = {"AutoencoderTiny": AutoencoderTiny, "AutoencoderKL": AutoencoderKL}
    try:
        config = _read_config(spec)
    except Exception as exc:  # huggingface_hub raises many kinds; all mean "not found here"
        raise ModelError(_not_found_message(spec, exc)) from exc
    class_name = config.get("_class_name", "")
    if class_name not in classes:
        raise ModelError(f"{spec}: model class {class_name!r} is not an SD VAE (want AutoencoderTiny or AutoencoderKL)")
    try:
        return classes[class_name].from_pretrained(spec)
    except Exception as exc:
        raise ModelError(f"{spec}: could not load {class_name}: {exc}") from exc


def _read_config(spec: str) -> dict:
    local = Path(spec) / "config.json"
    if local.is_file():
        return json.loads(local.read_text())
    from huggingface_hub import hf_hub_download

    return json.loads(Path(hf_hub_download(spec, "config.json")).read_text())


def _not_found_message(spec: str, exc: Exception) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    where = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
    hint = (
        f"HF_HUB_OFFLINE is set and the model is not in the cache at {where}; unset HF_HUB_OFFLINE once with network "
        "to download it"
        if offline
        else "check the hub id and your network, or set HF_HUB_CACHE to a cache that holds it"
    )
    return f"model {spec!r} not found ({type(exc).__name__}): {hint}; or pass --model PATH (a diffusers folder or a " \
           "vae_approx taesd_encoder/taesd_decoder file)"


def _load_vae_approx(path: Path, device: torch.device, family: str | None,
                     dtype: torch.dtype | None, tuned_encoder: bool, tuned_decoder: bool) -> LatentModel:
    encoder_file, decoder_file = _vae_approx_pair(path, family)
    from diffusers import AutoencoderTiny

    encoder_sd = _load_state_dict(encoder_file)
    decoder_sd = _load_state_dict(decoder_file)
    channels = int(encoder_sd[max(encoder_sd, key=_layer_index)].shape[0]) if encoder_sd else 4
    vae = AutoencoderTiny(latent_channels=channels)
    state = {f"encoder.layers.{k}": v for k, v in encoder_sd.items()}
    state.update({_decoder_key(k): v for k, v in decoder_sd.items()})
    missing, unexpected = vae.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise ModelError(f"{encoder_file.parent}: not a TAESD encoder/decoder pair "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    prefix = encoder_file.name.rsplit("_encoder", 1)[0]
    fam = get_family(family) if family else guess_family(prefix, channels)
    if channels != fam.channels:
        raise ModelError(f"{encoder_file}: {channels}-channel latents; family {fam.name} has {fam.channels}")
    return _with_tuned_parts(vae, fam, f"vae_approx:{prefix}", device, dtype, tuned_encoder, tuned_decoder)


def decoder_fingerprint(decoder: torch.nn.Module) -> str:
    """SHA-256 of a decoder's weights rounded to bfloat16, so float32 and bfloat16 copies of one model agree."""
    digest = hashlib.sha256()
    for name, tensor in sorted(decoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().to(torch.bfloat16).view(torch.int16).numpy().tobytes())
    return digest.hexdigest()


def save_encoder(encoder: torch.nn.Module, model: LatentModel, path: Path,
                 decoder: torch.nn.Module | None = None) -> None:
    """Write fine-tuned encoder weights (float16) tagged with the decoder they were tuned for (default: ``model``'s)."""
    from safetensors.torch import save_file

    tuned_for = model.vae.decoder if decoder is None else decoder
    tensors = {k: v.detach().cpu().half().contiguous() for k, v in encoder.state_dict().items()}
    save_file(tensors, str(path),
              metadata={"family": model.family.name, "decoder_sha256": decoder_fingerprint(tuned_for)})


def save_decoder(decoder: torch.nn.Module, replaces: str, family: str, path: Path, latent_blocks: int = 0) -> None:
    """Write fine-tuned decoder weights (float16) tagged with the fingerprint of the decoder they replace and the
    number of blocks ``add_latent_blocks`` inserted, and load the written values back into ``decoder``, so that an
    encoder tuned for it is tagged with what ships."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().half().contiguous() for k, v in decoder.state_dict().items()}
    metadata = {"family": family, "replaces_sha256": replaces}
    if latent_blocks:
        metadata["latent_blocks"] = str(latent_blocks)
    save_file(tensors, str(path), metadata=metadata)
    decoder.load_state_dict({k: v.float() for k, v in tensors.items()})


def identity_blocks(width: int, count: int, device: torch.device) -> list[torch.nn.Module]:
    """``count`` TAESD residual blocks of ``width`` channels whose residual starts at 0, so that each passes its
    input (>= 0, a ReLU's output) unchanged until trained."""
    from diffusers.models.autoencoders.vae import AutoencoderTinyBlock

    blocks = []
    for _ in range(count):
        block = AutoencoderTinyBlock(width, width, "relu").to(device)
        torch.nn.init.zeros_(block.conv[4].weight)
        torch.nn.init.zeros_(block.conv[4].bias)
        blocks.append(block)
    return blocks


def add_latent_blocks(decoder: torch.nn.Module, count: int) -> list[torch.nn.Parameter]:
    """Insert ``count`` ``identity_blocks`` after a TAESD decoder's last block at latent resolution (before its first
    upsampling); their parameters. At 1/64 of the pixels they cost little: four made a 768x512 decode 0.7 % slower
    on 2 CPU cores."""
    layers = list(decoder.layers)
    first_upsampling = next(i for i, layer in enumerate(layers) if isinstance(layer, torch.nn.Upsample))
    blocks = identity_blocks(layers[0].out_channels, count, layers[0].weight.device)
    decoder.layers = torch.nn.Sequential(*layers[:first_upsampling], *blocks, *layers[first_upsampling:])
    return [p for block in blocks for p in block.parameters()]


def load_decoder_weights(decoder: torch.nn.Module, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> int:
    """Load ``save_decoder``'s weights into ``decoder`` (a TAESD decoder as published), with the blocks they add;
    the number of those blocks."""
    blocks = int(metadata.get("latent_blocks", 0))
    add_latent_blocks(decoder, blocks)
    decoder.load_state_dict(tensors)
    return blocks


def _install_tuned_decoder(vae: torch.nn.Module,
                           family: LatentFamily) -> tuple[str | None, dict[str | None, torch.nn.Module]]:
    """Swap in sdfs's newest fine-tuned decoder where it was tuned from exactly this decoder: (its name, the decoders
    it displaces: the model's own under None and sdfs's older ones under their names), or (None, {})."""
    tuned = _tuned_weights_for(vae, TUNED_DECODERS.get(family.name, ()), "replaces_sha256")
    if not tuned:
        return None, {}
    kept: dict[str | None, torch.nn.Module] = {None: copy.deepcopy(vae.decoder)}
    for name, tensors, metadata in tuned[:-1]:
        kept[name] = copy.deepcopy(kept[None])
        load_decoder_weights(kept[name], tensors, metadata)
    name, tensors, metadata = tuned[-1]
    load_decoder_weights(vae.decoder, tensors, metadata)
    return name, kept


def _install_tuned_encoder(vae: torch.nn.Module, family: LatentFamily) -> str | None:
    """Swap in sdfs's fine-tuned encoder where one was tuned for exactly this decoder; its name, or None."""
    files = (TUNED_ENCODERS[family.name],) if family.name in TUNED_ENCODERS else ()
    for name, tensors, _ in _tuned_weights_for(vae, files, "decoder_sha256"):
        vae.encoder.load_state_dict(tensors)
        return name
    return None


def _tuned_weights_for(vae: torch.nn.Module, files: tuple[str, ...],
                       tag: str) -> list[tuple[str, dict[str, torch.Tensor], dict[str, str]]]:
    """(name, tensors, metadata) of each of sdfs's weights ``files`` whose ``tag`` is this model's decoder's
    fingerprint."""
    if type(vae).__name__ != "AutoencoderTiny" or not files:
        return []
    fingerprint = decoder_fingerprint(vae.decoder)
    found = []
    for file in files:
        path = WEIGHTS / file
        try:
            tensors, metadata = read_weights(path)
        except ModelError as exc:
            raise ModelError(f"{exc}; reinstall sdfs") from exc
        if metadata.get(tag) == fingerprint:
            found.append((path.stem, tensors, metadata))
        else:
            log.info("%s was tuned with another decoder than this model's; not used", path.name)
    return found


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The float32 tensors and the metadata of a weights file written by ``save_encoder`` or ``save_decoder``."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:  # one read for the tag and the weights
            return {key: f.get_tensor(key).float() for key in f.keys()}, f.metadata() or {}
    except Exception as exc:
        raise ModelError(f"{path}: cannot read sdfs's weights ({exc})") from exc


def load_encoder_weights(encoder: torch.nn.Module, path: Path) -> None:
    """Load an encoder weights file (``save_encoder``'s format) into ``encoder``, whatever decoder it was tuned for."""
    encoder.load_state_dict(read_weights(path)[0])


def _vae_approx_pair(path: Path, family: str | None) -> tuple[Path, Path]:
    if path.is_dir():
        prefix = get_family(family or "sd1").vae_approx_prefix
        candidates = [path / f"{prefix}_encoder{ext}" for ext in (".safetensors", ".pth")]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise ModelError(f"{path}: no {prefix}_encoder.safetensors or .pth here (family {family or 'sd1'})")
        path = found[0]
    if not path.is_file():
        raise ModelError(f"model file {path} not found; pass --model with a diffusers folder, a hub id, or a "
                         "vae_approx taesd_encoder file")
    if "_encoder" in path.name:
        encoder, decoder = path, path.with_name(path.name.replace("_encoder", "_decoder"))
    elif "_decoder" in path.name:
        encoder, decoder = path.with_name(path.name.replace("_decoder", "_encoder")), path
    else:
        raise ModelError(f"{path}: expected a *_encoder or *_decoder file from a vae_approx folder")
    for f in (encoder, decoder):
        if not f.is_file():
            raise ModelError(f"{f} not found: sdfs needs both the _encoder and the _decoder file")
    return encoder, decoder


def _layer_index(key: str) -> tuple[int, str]:
    head = key.split(".", 1)[0]
    return (int(head) if head.isdigit() else -1, key)


def _decoder_key(key: str) -> str:
    head, rest = key.split(".", 1)
    return f"decoder.layers.{int(head) - 1}.{rest}"


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: cannot read weights: {exc}") from exc


def cached_models(cache_dir: str | None = None) -> list[dict]:
    """The SD VAEs in the Hugging Face cache: repo id, class, latent family, path."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return []
    found = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)[:1]:
            config_file = Path(revision.snapshot_path) / "config.json"
            try:
                config = json.loads(config_file.read_text())
            except (OSError, ValueError):
                continue
            class_name = config.get("_class_name")
            if class_name not in ("AutoencoderTiny", "AutoencoderKL"):
                continue
            try:
                scaling = float(config.get("scaling_factor", 0)) if class_name == "AutoencoderKL" else None
                family = guess_family(repo.repo_id, int(config.get("latent_channels", 4)), scaling).name
            except ModelError:
                family = "?"
            found.append({"id": repo.repo_id, "class": class_name, "family": family,
                          "path": str(revision.snapshot_path), "bytes": revision.size_on_disk})
    return found
