"""Codec: images <-> sdfs blobs. Knows nothing of files on a mount, LMDB or FUSE."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Hashable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import entropy, postfilter
from .container import Blob, ContainerError
from .images import DEFAULT_MAX_PIXELS, ImageData, pad_offsets, pad_to_multiple, padded_size, read_image, rgb_to_grey
from .models import DEFAULT_MODEL, LatentModel, load_model
from .optimize import RATE_WEIGHT, STRUCTURE_WEIGHT, Objective, RefineReport, refine, steps_for_effort
from .quant import PALETTE, QuantError, QuantizedLatent, UniformQuantizer, make_quantizer, symbol_shape
from .rotations import NO_ROTATION, rotation_for_family
from .tiling import run_tiled

log = logging.getLogger(__name__)

ImageInput = ImageData | bytes | str | Path
MIN_SIDE = 64  # pixels: smaller images are mirrored up to this, since a 1x1 latent decodes poorly
# levels per latent value where neither bits nor levels are given (sd1 0.23 bpp, sd3 0.32 bpp on Kodak).
# sd3 has four times sd1's values per pixel but codes them as Haar bands (docs/BENCHMARKS.md);
# flux has sd3's 16 channels and no rotation, so 3 bits is already 0.44 bpp.
DEFAULT_LEVELS = {"sd1": 32, "sdxl": 32, "sd3": 8, "flux": 8}


class CodecError(ValueError):
    """A blob this codec cannot decode (wrong family, corrupt payload); the message says why."""


@dataclass
class CodecConfig:
    quantizer: str = "uniform"
    bits: int | None = None  # uniform quantiser: 2**bits levels per value; neither this nor levels: DEFAULT_LEVELS
    levels: int | None = None  # uniform quantiser's levels per value (2..256): overrides bits, for rates between them
    palette_size: int = 256
    decorrelate: bool = True  # uniform: code the family's principal components where sdfs ships a rotation (sd3)
    bands: bool = True  # those components as Haar bands (quant.DeepHaarQuantizer at few levels)
    # 3: two more levels nested in LL up to quant.NESTED_MAX_LEVELS (since 2026-12-05); 2: one more
    # (quant.NestedHaarQuantizer); 1: one level of bands (quant.RotatedHaarQuantizer, until 2026-12-04)
    haar_levels: int = 3
    effort: int = 0
    structure_weight: float = STRUCTURE_WEIGHT  # effort's refinement: weight of (1 - MS-SSIM)
    rate_weight: float = RATE_WEIGHT  # effort's refinement: weight of its estimate of bits per pixel
    restoration: bool = True  # fit a decoder-side restoration filter (costs the encoder one decode)
    coder: int = entropy.CONTEXT
    seed: int = 0
    encode_tile: int = 1024  # pixels per side encoded in one pass
    decode_tile: int = 128  # latent cells per side decoded in one pass
    max_pixels: int = DEFAULT_MAX_PIXELS
    scale: float = 1.0  # code the latent of the photo shrunk by this (0 < scale <= 1); the decoder scales up


@dataclass
class CodedLatent:
    """A photo's latent, quantised and entropy-coded, whose blob waits for its restoration filter."""

    image: ImageData
    coded: ImageData  # the picture the latent holds: ``image``, or it shrunk
    q: QuantizedLatent
    blob: Blob  # without the filter
    min_bytes: int  # the blob's size without the filter: the finished blob is at least this


@dataclass
class BlobInfo:
    family: str
    encoder: str
    width: int
    height: int
    mode: str
    quantizer: str
    levels: int
    coder: str
    latent_shape: tuple[int, int, int]
    bytes: int
    coded_size: tuple[int, int]  # (width, height) the latent holds: smaller than the image's when shrunk
    restoration: str = "none"  # the decoder-side filter: "none", "3x3" or "5x5 cross-channel"
    decoder: str | None = None  # sdfs's tuned decoder the blob was fitted for; None: the model's own

    @property
    def bpp(self) -> float:
        return self.bytes * 8 / (self.width * self.height)


class Codec:
    """Encode images to self-describing blobs and decode them back to pixels."""

    def __init__(self, model: LatentModel, config: CodecConfig | None = None) -> None:
        self.model = model
        self.config = config or CodecConfig()
        if not 0 < self.config.scale <= 1:
            raise ValueError(f"scale must be in (0, 1], not {self.config.scale}")
        rotation = rotation_for_family(model.family.name) if self.config.decorrelate else NO_ROTATION
        self.quantizer = make_quantizer(self.config.quantizer, palette_size=self.config.palette_size,
                                        seed=self.config.seed, levels=self.levels_for(model.family.name, self.config),
                                        rotation=rotation, bands=self.config.bands, haar_levels=self.config.haar_levels)
        self.steps = steps_for_effort(self.config.effort)
        self.objective = Objective(self.config.structure_weight, self.config.rate_weight)
        self.last_reports: list[RefineReport] = []
        # called between refinement steps (a service yields the device to reads there)
        self.between_steps: Callable[[], None] | None = None
        self._foreign_decoders: set[str] = set()  # tuned decoders named by blobs that this model lacks, logged

    @staticmethod
    def levels_for(family: str, config: CodecConfig) -> int:
        """The uniform quantiser's levels per value: the config's levels, else 2**bits, else the family's default."""
        if config.levels is not None:
            return config.levels
        if config.bits is not None:
            return UniformQuantizer(config.bits).levels  # says so if bits is not 2..8
        return DEFAULT_LEVELS[family]

    @classmethod
    def from_pretrained(cls, model: str = DEFAULT_MODEL, device: str = "auto", family: str | None = None,
                        **config) -> "Codec":
        return cls(load_model(model, device=device, family=family), CodecConfig(**config))

    # --- encoding ----------------------------------------------------------------------------
    def encode(self, image: ImageInput) -> bytes:
        return self.encode_batch([image])[0]

    def encode_batch(self, images: Sequence[ImageInput]) -> list[bytes]:
        """Encode several images, running the encoder on same-shaped ones together."""
        return [blob for blob, _ in map(self._finish, self.code_batch(images))]

    def encode_decoded_batch(self, images: Sequence[ImageInput]) -> list[tuple[bytes, ImageData]]:
        """Each image's blob and the picture ``decode`` gives of it (``finish_batch``)."""
        return self.finish_batch(self.code_batch(images))

    def code_batch(self, images: Sequence[ImageInput]) -> list[CodedLatent]:
        """Encode, quantise (and refine, at effort > 0) and entropy-code several images: everything but the
        restoration filter, which costs a decode. ``CodedLatent.min_bytes`` bounds each blob's size from below."""
        loaded = [self._load(img) for img in images]
        coded = [self._coded(img) for img in loaded]
        padded = [self._to_tensor(pad_to_multiple(img.rgb(), self.model.factor, MIN_SIDE)[0]) for img in coded]
        latents = self._encode_tensors(padded)
        self.last_reports = []
        return [self._code(img, small, x, z) for img, small, x, z in zip(loaded, coded, padded, latents)]

    def finish_batch(self, latents: Sequence[CodedLatent]) -> list[tuple[bytes, ImageData]]:
        """Each coded latent's blob, its restoration filter fitted, and the picture ``decode`` gives of that blob,
        for no more than the blob costs: fitting the filter decodes the latent as stored (with the filter off,
        one decode more)."""
        finished = [self._finish(latent) for latent in latents]
        missing = [i for i, (_, decoded) in enumerate(finished) if decoded is None]
        redone = dict(zip(missing, self.decode_batch([finished[i][0] for i in missing]))) if missing else {}
        return [(blob, redone[i] if decoded is None else self._finish_decode(self._parse(blob), decoded))
                for i, (blob, decoded) in enumerate(finished)]

    def _coded(self, img: ImageData) -> ImageData:
        """The picture the latent will hold: the image itself, or the image shrunk by ``config.scale``."""
        size = coded_size(img.width, img.height, self.config.scale, self.model.factor)
        if size == (img.width, img.height):
            return img
        alpha = None if img.alpha is None else np.asarray(Image.fromarray(img.alpha).resize(size, Image.BILINEAR))
        pixels = np.asarray(Image.fromarray(img.rgb()).resize(size, Image.LANCZOS))
        return ImageData(pixels=pixels, alpha=alpha)

    def _load(self, image: ImageInput) -> ImageData:
        return image if isinstance(image, ImageData) else read_image(image, max_pixels=self.config.max_pixels)

    @staticmethod
    def _to_tensor(pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float() / 127.5 - 1.0

    def _encode_tensors(self, tensors: list[torch.Tensor]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(tensors)
        for indices in _equal_groups([tuple(t.shape) for t in tensors]):
            if max(tensors[indices[0]].shape[-2:]) > self.config.encode_tile:
                for i in indices:
                    out[i] = self._encode_tiled(tensors[i])[0]
                continue
            batch = self.model.encode(torch.cat([tensors[i] for i in indices]))
            for i, z in zip(indices, batch.cpu().numpy()):
                out[i] = z
        return out

    def _encode_tiled(self, x: torch.Tensor) -> np.ndarray:
        tile, factor = self.config.encode_tile, self.model.factor
        return run_tiled(lambda t: self.model.encode(t).cpu(), x, 1 / factor, tile, 8 * factor).numpy()

    def _code(self, img: ImageData, coded: ImageData, x: torch.Tensor, latent: np.ndarray) -> CodedLatent:
        q = self.quantizer.quantize(latent)
        if self.steps:
            q = self._refine(q, latent, x, coded)
        scaled = coded is not img
        blob = Blob(
            family=self.model.family.name, encoder=self.model.encoder_name, width=img.width, height=img.height,
            mode="L" if img.is_grey else "RGB", latent_height=latent.shape[1], latent_width=latent.shape[2],
            channels=latent.shape[0], quantizer=q.params_bytes(), coder=self.config.coder,
            payload=entropy.encode(q.symbols, q.levels, self.config.coder),
            alpha=_alpha_png(img.alpha), icc=img.icc, exif=img.exif,
            coded_width=coded.width if scaled else None, coded_height=coded.height if scaled else None,
            decoder=self.model.tuned_decoder,
        )
        return CodedLatent(img, coded, q, blob, len(blob.to_bytes()))

    def _finish(self, latent: CodedLatent) -> tuple[bytes, torch.Tensor | None]:
        """The blob with its restoration filter, and the decode the filter was fitted to (None when off)."""
        restoration, decoded = self._restoration(latent.q, latent.image, latent.coded, len(latent.blob.payload))
        return replace(latent.blob, restoration=restoration).to_bytes(), decoded

    def _restoration(self, q: QuantizedLatent, img: ImageData, coded: ImageData,
                     coded_bytes: int) -> tuple[bytes | None, torch.Tensor | None]:
        """Decode the latent as stored and fit the filter that brings it closest to the photo; the filter
        and that decode (padded, before any scaling up and before the filter), or (None, None) when off.

        A scaled-down latent's filter is fitted after scaling up, at the photo's own size, so it
        also sharpens what the scaling blurred.
        """
        if not self.config.restoration:
            return None, None
        decoded = fitted_to = self._decode_latents([torch.from_numpy(q.dequantize())[None]])[0]
        top, left, _, _ = pad_offsets(coded.height, coded.width, self.model.factor, MIN_SIDE)
        region = (slice(top, top + coded.height), slice(left, left + coded.width))
        if coded is not img:
            fitted_to = scale_up(decoded[..., region[0], region[1]], img.height, img.width)
            x, region = self._to_tensor(img.rgb()), (slice(0, img.height), slice(0, img.width))
        else:
            x = self._to_tensor(pad_to_multiple(coded.rgb(), self.model.factor, MIN_SIDE)[0])
        coefficients = postfilter.fit(fitted_to, x, region, coded_bytes)
        return (None if coefficients is None else postfilter.pack(coefficients)), decoded

    def _refine(self, q: QuantizedLatent, latent: np.ndarray, x: torch.Tensor, img: ImageData) -> QuantizedLatent:
        device = self.model.device
        weight = None
        if img.alpha is not None:
            alpha = pad_to_multiple(img.alpha, self.model.factor, MIN_SIDE)[0]
            weight = (0.05 + 0.95 * torch.from_numpy(alpha).float() / 255.0)[None, None].to(device)
        q, report = refine(q, latent, x.to(device), weight, self.model.decode_with_grad(), self.model.factor,
                           self.steps, seed=self.config.seed,
                           objective=self.objective,
                           between_steps=self.between_steps)
        self.last_reports.append(report)
        return q

    # --- decoding ----------------------------------------------------------------------------
    def decode(self, data: bytes) -> ImageData:
        return self.decode_batch([data])[0]

    def decode_batch(self, blobs: Sequence[bytes]) -> list[ImageData]:
        """Decode several blobs, running each decoder on its same-shaped latents together."""
        parsed = [self._parse(data) for data in blobs]
        latents = [self._latent_of(blob) for blob in parsed]
        images = self._decode_latents(latents, [self._decoder_for(blob) for blob in parsed])
        return [self._finish_decode(blob, image) for blob, image in zip(parsed, images)]

    def _parse(self, data: bytes) -> Blob:
        try:
            blob = Blob.from_bytes(data, max_pixels=self.config.max_pixels)
        except ContainerError as exc:
            raise CodecError(str(exc)) from None
        if blob.family != self.model.family.name:
            raise CodecError(f"blob holds {blob.family} latents (written by {blob.encoder}); this decoder "
                             f"({self.model.model_id}) reads {self.model.family.name}")
        if blob.channels != self.model.channels:
            raise CodecError(f"blob has {blob.channels} latent channels, the model expects {self.model.channels}")
        if blob.restoration is not None:
            try:
                postfilter.unpack(blob.restoration, 3)
            except postfilter.FilterError as exc:
                raise CodecError(str(exc)) from None
        factor, (width, height) = self.model.factor, blob.coded_size
        expected = tuple(padded_size(side, factor, MIN_SIDE) // factor for side in (height, width))
        if (blob.latent_height, blob.latent_width) != expected:
            raise CodecError(f"latent {blob.latent_height}x{blob.latent_width} does not match image "
                             f"{width}x{height}")
        return blob

    def _decoder_for(self, blob: Blob) -> torch.nn.Module | None:
        """The decoder that draws this blob (None: the installed one): the one its encoder fitted it for (the
        restoration filter, the refinement), kept beside sdfs's newer tuned decoder. A blob fitted for a tuned decoder
        this model lacks decodes with the installed one, as a latent of the family, less faithfully; that is logged
        once per decoder."""
        kept = self.model.kept_decoders
        if blob.decoder == self.model.tuned_decoder or blob.decoder in kept:
            return kept.get(blob.decoder)
        if blob.decoder is not None and blob.decoder not in self._foreign_decoders:
            self._foreign_decoders.add(blob.decoder)
            log.warning("blobs written by %s were fitted for its decoder %s; %s draws them less faithfully",
                        blob.encoder, blob.decoder, self.model.decoder_name)
        return None

    def _latent_of(self, blob: Blob) -> torch.Tensor:
        try:
            size = (blob.latent_height, blob.latent_width)
            q = QuantizedLatent.parse_params(blob.quantizer, blob.channels, size)
            shape = symbol_shape(q.kind, blob.channels, *size)
            q.symbols = entropy.decode(blob.payload, shape, q.levels, blob.coder)
        except (QuantError, entropy.EntropyError) as exc:
            raise CodecError(str(exc)) from None
        if q.kind == PALETTE and q.symbols.max(initial=0) >= len(q.table):
            raise CodecError("palette index out of range")
        return torch.from_numpy(q.dequantize())[None]

    def _decode_latents(self, latents: list[torch.Tensor],
                        decoders: list[torch.nn.Module | None] | None = None) -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(latents)
        tile, factor = self.config.decode_tile, self.model.factor
        decoders = decoders or [None] * len(latents)
        for indices in _equal_groups([(tuple(z.shape), id(d)) for z, d in zip(latents, decoders)]):
            decoder = decoders[indices[0]]
            if max(latents[indices[0]].shape[-2:]) > tile:
                for i in indices:
                    out[i] = run_tiled(lambda t: self.model.decode(t, decoder).cpu(), latents[i], factor, tile, 8)
                continue
            batch = self.model.decode(torch.cat([latents[i] for i in indices]), decoder).cpu()
            for i, image in zip(indices, batch):
                out[i] = image[None]
        return out

    def _finish_decode(self, blob: Blob, image: torch.Tensor) -> ImageData:
        width, height = blob.coded_size
        top, left, _, _ = pad_offsets(height, width, self.model.factor, MIN_SIDE)
        if (width, height) != (blob.width, blob.height):
            image = scale_up(image[..., top:top + height, left:left + width], blob.height, blob.width)
            top = left = 0
        if blob.restoration is not None:  # where the encoder fitted it: the padded decode, or the scaled-up one
            image = postfilter.apply(image, postfilter.unpack(blob.restoration, image.shape[1]))
        crop = image[0, :, top:top + blob.height, left:left + blob.width]
        rgb = ((crop + 1) * 127.5).round().clamp(0, 255).byte()
        pixels = rgb.permute(1, 2, 0).contiguous().numpy()
        if blob.mode == "L":
            pixels = rgb_to_grey(pixels)
        alpha = _alpha_from_png(blob.alpha, blob.width, blob.height) if blob.alpha is not None else None
        return ImageData(pixels=pixels, alpha=alpha, icc=blob.icc, exif=blob.exif)

    # --- inspection --------------------------------------------------------------------------
    @staticmethod
    def info(data: bytes) -> BlobInfo:
        """Read a blob's header without decoding it."""
        blob = Blob.from_bytes(data)
        q = QuantizedLatent.parse_params(blob.quantizer, blob.channels)
        return BlobInfo(
            family=blob.family, encoder=blob.encoder, width=blob.width, height=blob.height,
            mode=blob.mode + ("A" if blob.alpha is not None else ""),
            quantizer=q.name, levels=q.requested_levels,
            coder=entropy.CODER_NAMES.get(blob.coder, str(blob.coder)),
            latent_shape=(blob.channels, blob.latent_height, blob.latent_width), bytes=len(data),
            coded_size=blob.coded_size, restoration=postfilter.describe(blob.restoration), decoder=blob.decoder,
        )


def coded_size(width: int, height: int, scale: float, factor: int) -> tuple[int, int]:
    """The size a latent at ``scale`` codes: each side scaled and rounded to whole latent cells, never larger."""
    if scale >= 1:
        return width, height
    return tuple(min(side, max(factor, round(side * scale / factor) * factor)) for side in (width, height))


def scale_up(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic scaling of decoded (1, C, h, w) pixels up to height x width."""
    return F.interpolate(image.float(), size=(height, width), mode="bicubic", align_corners=False)


def _equal_groups(keys: Iterable[Hashable]) -> list[list[int]]:
    """The indices of equal keys, grouped (latents one decoder pass can take together)."""
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _alpha_png(alpha: np.ndarray | None) -> bytes | None:
    if alpha is None:
        return None
    buf = io.BytesIO()
    Image.fromarray(alpha, "L").save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _alpha_from_png(data: bytes, width: int, height: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size != (width, height) or im.mode != "L" or im.format != "PNG":
                raise CodecError(f"alpha plane is {im.mode} {im.size[0]}x{im.size[1]}, expected L {width}x{height}")
            return np.asarray(im).copy()
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"alpha plane corrupt: {exc}") from None
