"""Round-trip the Kodak set through `sdfs encode` / `sdfs decode` at several settings.

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 python benchmarks/codec_kodak.py [--limit N]

For each setting it runs the real CLI on the whole folder, then prints mean bytes, bpp and
PSNR (RGB) against the originals, plus the entropy coder's bits per latent value against
lzma and zstd on the same symbols. Also measures encoder effort levels on a 256x256 crop.
Writes benchmarks/out/codec_kodak.json; docs/CODEC.md quotes its output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SDFS_SHARED", REPO.parent / "shared"))
KODAK = SHARED / "data" / "kodak"
SD1 = "madebyollin/taesd"  # the figures in docs/CODEC.md are sd1's, the default model of their day
SETTINGS = [
    ("uniform 3 bits", ["--bits", "3"]),
    ("uniform 4 bits", ["--bits", "4"]),
    ("uniform 5 bits (sd1 default)", ["--bits", "5"]),
    ("uniform 6 bits", ["--bits", "6"]),
    ("uniform 8 bits", ["--bits", "8"]),
    ("palette 256 + dither", ["--quantizer", "palette"]),
    ("uniform 5 bits, lzma coder", ["--bits", "5", "--coder", "lzma"]),
]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse else float("inf")


def run_setting(files: list[Path], extra: list[str], work: Path) -> dict:
    enc, dec = work / "enc", work / "dec"
    for d in (enc, dec):
        subprocess.run(["rm", "-rf", str(d)], check=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sdfs.cli", "encode", *map(str, files), "-o", f"{enc}/", "-q",
                    "--model", SD1, *extra],
                   check=True)
    t1 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sdfs.cli", "decode", str(enc), "-o", f"{dec}/", "-q", "--model", SD1], check=True)
    t2 = time.perf_counter()
    sizes, bpps, psnrs = [], [], []
    for f in files:
        original = np.asarray(Image.open(f).convert("RGB"))
        decoded = np.asarray(Image.open(dec / f"{f.stem}.png").convert("RGB"))
        assert decoded.shape == original.shape, f"{f.name}: decoded shape {decoded.shape}"
        size = (enc / f"{f.stem}.sdl").stat().st_size
        sizes.append(size)
        bpps.append(size * 8 / (original.shape[0] * original.shape[1]))
        psnrs.append(psnr(original, decoded))
    return {"files": len(files), "mean_bytes": float(np.mean(sizes)), "mean_bpp": float(np.mean(bpps)),
            "mean_psnr": float(np.mean(psnrs)), "encode_s": t1 - t0, "decode_s": t2 - t1}


def entropy_comparison(files: list[Path], bits: int = 5) -> dict:
    import torch
    import zstandard

    from sdfs.codec import entropy, load_model, read_image
    from sdfs.codec.quant import UniformQuantizer

    model = load_model(SD1)
    totals = {"context": 0, "lzma": 0, "zstd": 0, "values": 0}
    for f in files:
        img = read_image(f)
        x = torch.from_numpy(img.rgb().copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
        q = UniformQuantizer(bits).quantize(model.encode(x)[0].numpy())
        totals["context"] += len(entropy.encode(q.symbols, q.levels))
        totals["lzma"] += len(entropy.encode(q.symbols, q.levels, entropy.LZMA))
        totals["zstd"] += len(zstandard.ZstdCompressor(level=22).compress(q.symbols.astype(np.uint8).tobytes()))
        totals["values"] += q.symbols.size
    return {k: totals[k] * 8 / totals["values"] for k in ("context", "lzma", "zstd")} | {"bits": bits}


def effort_levels(levels=(0, 1, 2, 3)) -> list[dict]:
    from sdfs.codec import Codec, CodecConfig, ImageData, load_model, read_image

    model = load_model(SD1)
    img = read_image(KODAK / "kodim23.png")
    crop = ImageData(np.ascontiguousarray(img.pixels[128:384, 256:512]))
    rows = []
    for effort in levels:
        codec = Codec(model, CodecConfig(bits=5, effort=effort))
        t0 = time.perf_counter()
        data = codec.encode(crop)
        seconds = time.perf_counter() - t0
        out = codec.decode(data)
        rows.append({"effort": effort, "bytes": len(data), "psnr": psnr(crop.pixels, out.pixels), "encode_s": seconds})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--skip-settings", action="store_true")
    args = parser.parse_args()
    files = sorted(KODAK.glob("kodim*.png"))[: args.limit]
    results: dict = {"settings": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in SETTINGS if not args.skip_settings else []:
            r = run_setting(files, extra, Path(tmp))
            results["settings"][name] = r
            print(f"{name:28s} {r['mean_bytes']:8.0f} B  {r['mean_bpp']:.3f} bpp  PSNR {r['mean_psnr']:.2f} dB  "
                  f"encode {r['encode_s']:.0f} s  decode {r['decode_s']:.0f} s  ({r['files']} images)", flush=True)
    results["entropy"] = entropy_comparison(files)
    e = results["entropy"]
    print(f"entropy coding of 5-bit latents: context {e['context']:.3f}, lzma {e['lzma']:.3f}, "
          f"zstd {e['zstd']:.3f} bits per latent value", flush=True)
    results["effort"] = effort_levels()
    for row in results["effort"]:
        print(f"effort {row['effort']}: {row['bytes']} B  PSNR {row['psnr']:.2f} dB  encode {row['encode_s']:.1f} s "
              "(256x256 crop of kodim23, 5 bits)", flush=True)
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "codec_kodak.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
