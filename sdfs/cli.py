"""Command-line front end: ``sdfs encode``, ``sdfs decode``, ``sdfs info``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .units import human_bytes

log = logging.getLogger("sdfs")

BLOB_SUFFIX = ".sdl"


@dataclass
class Tally:
    """What a bulk command did, for its one-line summary."""

    files: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    pixels: int = 0
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def summary(self, verb: str) -> str:
        seconds = time.perf_counter() - self.started
        bpp = f", {self.bytes_out * 8 / self.pixels:.3f} bpp" if self.pixels and verb == "encoded" else ""
        failed = f", {len(self.failures)} failed" if self.failures else ""
        return (f"{verb} {self.files} files, {human_bytes(self.bytes_in)} -> {human_bytes(self.bytes_out)}{bpp}, "
                f"{seconds:.1f} s{failed}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    _setup_logging(args.verbose - args.quiet)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("sdfs: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        print(f"sdfs: {exc}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[BaseException], ...]:
    """Imported lazily so that ``sdfs --help`` does not load torch."""
    from .codec import CodecError, ImageError, ModelError
    from .mount import MountError
    from .store import StoreError

    return (ModelError, CodecError, ImageError, MountError, StoreError, ValueError, FileNotFoundError,
            PermissionError, IsADirectoryError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdfs", description="Photos stored as Stable Diffusion latents.")
    sub = parser.add_subparsers(dest="command", required=True)

    enc = sub.add_parser("encode", help="encode images to .sdl blobs")
    enc.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    enc.add_argument("-o", "--output", type=Path, required=True, help="output file, or folder for many inputs")
    enc.add_argument("--bits", type=int, help="bits per latent value, uniform quantiser (2..8); default: the "
                     "model's family's rate (sd3: 8 levels, sd1: 5 bits)")
    enc.add_argument("--levels", type=int,
                     help="levels per latent value (2..256) instead of 2^bits: rates between bits")
    enc.add_argument("--quantizer", choices=("uniform", "palette"), default="uniform")
    enc.add_argument("--palette-size", type=int, default=256)
    enc.add_argument("--effort", type=int, default=0, choices=range(5),
                     help="decoder-in-the-loop refinement: 0 none .. 4 most (slow on CPU)")
    enc.add_argument("--scale", type=float, default=1.0,
                     help="code the photo shrunk by this (0..1], scaled back up on decode: for rates below what "
                          "full size reaches (sd1: 3 bits; sd3: 3 levels, about 0.08 bpp on Kodak)")
    enc.add_argument("--coder", choices=("context", "lzma"), default="context", help="entropy coder")
    enc.add_argument("--batch", type=int, default=8, help="images per device batch")
    _add_model_options(enc)
    enc.set_defaults(run=run_encode)

    dec = sub.add_parser("decode", help="decode .sdl blobs to images")
    dec.add_argument("inputs", nargs="+", type=Path, help=".sdl files or folders")
    dec.add_argument("-o", "--output", type=Path, required=True, help="output image (.png, .jpg, .webp) or folder")
    dec.add_argument("--batch", type=int, default=8)
    _add_model_options(dec)
    dec.set_defaults(run=run_decode)

    info = sub.add_parser("info", help="show what a blob holds, without decoding")
    info.add_argument("inputs", nargs="+", type=Path)
    info.set_defaults(run=run_info)

    mnt = sub.add_parser("mount", help="mount a store (created if new) at a mount point")
    mnt.add_argument("store", help="store directory (one LMDB environment)")
    mnt.add_argument("mountpoint")
    mnt.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground (default: daemonise)")
    mnt.add_argument("--cache-size", type=_size, default="512M", help="bytes of rendered files kept in memory")
    mnt.add_argument("--keep-originals", action="store_true", help="keep each original file beside its latent")
    mnt.add_argument("-o", dest="options", default="", help="comma-separated: ro, allow_other")
    mnt.add_argument("--log", type=Path, help="daemon log file (default STORE/sdfs.log)")
    _add_new_store_options(mnt)
    mnt.set_defaults(run=run_mount)

    umnt = sub.add_parser("umount", help="unmount cleanly (also recovers a mount whose daemon died)")
    umnt.add_argument("mountpoint")
    umnt.set_defaults(run=run_umount)

    fsck = sub.add_parser("fsck", help="check a store (not mounted) and optionally repair it")
    fsck.add_argument("store")
    fsck.add_argument("--repair", action="store_true")
    fsck.set_defaults(run=run_fsck)

    imp = sub.add_parser("import", help="bulk-ingest a folder into a store without a mount (resumable)")
    imp.add_argument("source", type=Path)
    imp.add_argument("store")
    imp.add_argument("--batch", type=int, default=8, help="images per device batch")
    imp.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                     help="worker processes for the quality guard's AVIF search and metrics (default: all cores)")
    imp.add_argument("--keep-originals", action="store_true")
    _add_new_store_options(imp)
    imp.set_defaults(run=run_import)

    exp = sub.add_parser("export", help="write a store's files out (images decoded) without a mount")
    exp.add_argument("store")
    exp.add_argument("dest", type=Path)
    exp.add_argument("--format", choices=("png", "jpeg", "webp", "avif"), default="png")
    _add_model_options(exp, store_decides=True)
    exp.set_defaults(run=run_export)

    sts = sub.add_parser("stats", help="files, bytes stored against original bytes, codec mix, queue")
    sts.add_argument("store")
    sts.set_defaults(run=run_stats)

    mdl = sub.add_parser("models", help="the SD VAEs in the Hugging Face cache and the latent family each reads")
    mdl.set_defaults(run=run_models)

    bench = sub.add_parser("bench", help="sdfs against JPEG, WebP, AVIF and JPEG XL at equal bytes (needs the [bench] extra)")
    bench.add_argument("folder", type=Path, help="folder of test images (e.g. the Kodak set)")
    bench.add_argument("--bits", help="sdfs rate points: comma-separated bits; NL is N levels (5L); BITS@SCALE codes "
                       "the photo shrunk by SCALE (4@0.75, 5L@0.75); default: the family's (sd3: 3L,4L,6L,8L, "
                       "sd1: 3,4,5,6)")
    bench.add_argument("--effort", type=int, default=0, choices=range(5))
    bench.add_argument("--codecs", default="jpeg,webp,avif,jxl", help="conventional codecs: jpeg, webp, avif, jxl")
    bench.add_argument("--metrics", default="psnr,msssim,ssimulacra2")
    bench.add_argument("--limit", type=int, help="only the first N images")
    bench.add_argument("--jobs", type=int, default=1, help="processes for the conventional codecs and metrics")
    bench.add_argument("--out", type=Path, default=Path("bench-out"), help="where CSV, JSON and plots go")
    _add_model_options(bench)
    bench.set_defaults(run=run_bench)

    for p in (parser, enc, dec, info, mnt, umnt, fsck, imp, exp, sts, mdl, bench):
        p.add_argument("-v", "--verbose", action="count", default=0)
        p.add_argument("-q", "--quiet", action="count", default=0)
    return parser


def _add_new_store_options(p: argparse.ArgumentParser) -> None:
    """Codec settings recorded in a store when it is created (an existing store keeps its own)."""
    p.add_argument("--bits", type=int, help="codec settings for a new store (see encode)")
    p.add_argument("--levels", type=int, help="levels per latent value, instead of 2^bits (see encode)")
    p.add_argument("--quantizer", choices=("uniform", "palette"))
    p.add_argument("--effort", type=int, choices=range(5))
    p.add_argument("--scale", type=float, help="code photos shrunk by this (see encode)")
    p.add_argument("--quality-floor", metavar="METRIC:SCORE",
                   help="quality guard: per image, store the smallest of latent, AVIF and the original file "
                        "whose METRIC (ssimulacra2, psnr, msssim) reaches SCORE; 'off' stores latents only. "
                        "New stores default to ssimulacra2:30; given for an existing store, it changes the "
                        "store's floor for files encoded from then on")
    _add_model_options(p, store_decides=True)


def _add_model_options(p: argparse.ArgumentParser, store_decides: bool = False) -> None:
    from .codec import DEFAULT_MODEL
    from .codec.images import DEFAULT_MAX_PIXELS

    p.add_argument("--model", default=None if store_decides else DEFAULT_MODEL,
                   help=f"hub id, diffusers folder, or vae_approx encoder/decoder file (default {DEFAULT_MODEL}, "
                        "or the store's own model)")
    p.add_argument("--family", choices=("sd1", "sdxl", "sd3", "flux"), help="latent family, when the model name does not say")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images (bomb guard)")


def _setup_logging(level: int) -> None:
    logging.basicConfig(level=logging.WARNING - 10 * level, format="sdfs: %(message)s", stream=sys.stderr)
    quiet_libraries()


def quiet_libraries() -> None:
    """diffusers and huggingface_hub chat about offline mode and accelerate; we report our own errors."""
    import warnings

    warnings.filterwarnings("ignore", module="huggingface_hub")
    warnings.filterwarnings("ignore", message=".*not writable.*")
    from diffusers.utils import logging as diffusers_logging
    from huggingface_hub.utils import logging as hub_logging

    diffusers_logging.set_verbosity_error()
    hub_logging.set_verbosity_error()


def _codec(args, **config):
    from .codec import Codec

    return Codec.from_pretrained(args.model, device=args.device, family=args.family, max_pixels=args.max_pixels,
                                 **config)


def _expand(inputs: Sequence[Path], suffixes: tuple[str, ...] | None = None) -> list[Path]:
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and (not suffixes or p.suffix.lower() in suffixes))
        else:
            files.append(path)
    return files


def _targets(files: list[Path], output: Path, suffix: str) -> list[Path]:
    if len(files) == 1 and not output.is_dir() and not str(output).endswith("/"):
        return [output]
    output.mkdir(parents=True, exist_ok=True)
    names: dict[str, int] = {}
    targets = []
    for f in files:
        stem = f.stem
        names[stem] = names.get(stem, 0) + 1
        unique = stem if names[stem] == 1 else f"{stem}-{names[stem]}"
        targets.append(output / f"{unique}{suffix}")
    return targets


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), max(1, size)):
        yield items[start:start + size]


def _progress(total: int, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=None if total > 1 else True, file=sys.stderr)


def _run_bulk(pairs: list[tuple[Path, Path]], batch: int, step: Callable[[list[tuple[Path, Path]], Tally], None],
              tally: Tally, unit: str) -> None:
    with _progress(len(pairs), unit) as bar:
        for chunk in _batches(pairs, batch):
            step(chunk, tally)
            bar.update(len(chunk))


def run_encode(args) -> int:
    from .codec import ImageError, read_image
    from .codec.entropy import CONTEXT, LZMA

    files = _expand(args.inputs)
    codec = _codec(args, quantizer=args.quantizer, bits=args.bits, levels=args.levels,
                   palette_size=args.palette_size, effort=args.effort,
                   coder={"context": CONTEXT, "lzma": LZMA}[args.coder], scale=args.scale)
    tally = Tally()

    def step(chunk, tally):
        images, kept = [], []
        for src, dst in chunk:
            try:
                images.append(read_image(src, max_pixels=args.max_pixels))
                kept.append((src, dst))
            except (ImageError, OSError) as exc:
                _fail(tally, src, exc)
        if not images:
            return
        for (src, dst), img, data in zip(kept, images, _each_or_fail(codec.encode_batch, images, kept, tally)):
            if data is None:
                continue
            dst.write_bytes(data)
            tally.files += 1
            tally.bytes_in += src.stat().st_size
            tally.bytes_out += len(data)
            tally.pixels += img.width * img.height

    _run_bulk(list(zip(files, _targets(files, args.output, BLOB_SUFFIX))), args.batch, step, tally, "img")
    return _finish(tally, "encoded")


def run_decode(args) -> int:
    files = _expand(args.inputs, (BLOB_SUFFIX,))
    codec = _codec(args)
    tally = Tally()

    def step(chunk, tally):
        blobs, kept = [], []
        for src, dst in chunk:
            try:
                blobs.append(src.read_bytes())
                kept.append((src, dst))
            except OSError as exc:
                _fail(tally, src, exc)
        for (src, dst), data, image in zip(kept, blobs, _each_or_fail(codec.decode_batch, blobs, kept, tally)):
            if image is None:
                continue
            try:
                image.save(dst, _format_for(dst))
            except (OSError, ValueError, KeyError) as exc:
                _fail(tally, dst, exc)
                continue
            tally.files += 1
            tally.bytes_in += len(data)
            tally.bytes_out += dst.stat().st_size

    _run_bulk(list(zip(files, _targets(files, args.output, ".png"))), args.batch, step, tally, "img")
    return _finish(tally, "decoded")


def _each_or_fail(batch_fn, items: list, pairs: list[tuple[Path, Path]], tally: Tally) -> list:
    """Run a batch; if it fails, retry one by one so that one bad file names itself."""
    try:
        return batch_fn(items)
    except Exception:  # noqa: BLE001 - narrowed below, per file
        results = []
        for item, (src, _) in zip(items, pairs):
            try:
                results.append(batch_fn([item])[0])
            except Exception as exc:  # noqa: BLE001 - every failure is reported with its file
                _fail(tally, src, exc)
                results.append(None)
        return results


def _format_for(path: Path) -> str:
    ext = path.suffix.lower()
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".avif": "AVIF", ".tif": "TIFF", ".tiff": "TIFF"}.get(
        ext, "PNG")


def _fail(tally: Tally, path: Path, exc: BaseException) -> None:
    message = str(exc)
    if str(path) not in message:
        message = f"{path}: {message}"
    tally.failures.append(message)
    log.error("%s", message)


def _finish(tally: Tally, verb: str) -> int:
    print(tally.summary(verb), file=sys.stderr)
    return 1 if tally.failures else 0


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = text.strip().upper().rstrip("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def run_mount(args) -> int:
    from .mount import daemonise, serve

    options = {o.strip() for o in args.options.split(",") if o.strip()}
    unknown = options - {"ro", "allow_other", "rw"}
    if unknown:
        raise ValueError(f"unknown mount option(s): {', '.join(sorted(unknown))}")
    if not args.foreground:
        argv = [a for a in args.argv if a not in ("-f", "--foreground")]
        return daemonise(argv, args.store, args.mountpoint, args.log or Path(args.store) / "sdfs.log")
    serve(args.store, args.mountpoint, args.model, args.device, args.family, args.cache_size, args.keep_originals,
          readonly="ro" in options, allow_other="allow_other" in options,
          codec_config=_new_store_config(args))
    return 0


def run_umount(args) -> int:
    from .mount import unmount

    unmount(args.mountpoint)
    return 0


def _new_store_config(args) -> dict:
    return {"bits": args.bits, "levels": args.levels, "quantizer": args.quantizer, "effort": args.effort,
            "scale": args.scale, "max_pixels": args.max_pixels, "quality_floor": args.quality_floor}


def _store_codec(store, args, config: dict):
    from .mount import open_codec_for_store

    return open_codec_for_store(store, args.model, args.device, args.family, config)


def run_import(args) -> int:
    from .importer import count_files, import_tree
    from .mount import guard_for_store
    from .store import Store

    if not args.source.is_dir():
        raise FileNotFoundError(f"{args.source}: not a folder")
    with Store(args.store, create=True) as store:
        codec = _store_codec(store, args, _new_store_config(args))
        with _progress(count_files(args.source), "file") as bar:
            report = import_tree(args.source, store, codec, guard_for_store(store), batch_size=args.batch,
                                 keep_originals=args.keep_originals, progress=bar.update, jobs=args.jobs)
    print(report.summary(), file=sys.stderr)
    return 1 if report.failures else 0


def run_export(args) -> int:
    from .exporter import export_tree
    from .store import Store

    with Store(args.store, create=False) as store:
        codec = _store_codec(store, args, {})
        with _progress(sum(1 for i in store.inodes() if i.kind == "file"), "file") as bar:
            report = export_tree(store, args.dest, codec, args.format, progress=bar.update)
    print(f"exported {report.files} files ({report.images} images as {args.format}), "
          f"{human_bytes(report.bytes_out)}" + (f", {len(report.failures)} failed" if report.failures else ""),
          file=sys.stderr)
    return 1 if report.failures else 0


def run_stats(args) -> int:
    from .stats import gather, render
    from .store import Store

    with Store(args.store, create=False, lock=False, readonly=True) as store:  # works while mounted
        print(render(gather(store), store.settings))
    return 0


def run_models(args) -> int:
    from .codec.models import DEFAULT_MODEL, cached_models

    models = cached_models()
    if not models:
        print(f"no SD VAE in the Hugging Face cache; sdfs downloads {DEFAULT_MODEL} on first use, or pass --model PATH")
        return 0
    for m in models:
        print(f"{m['id']:40s} {m['class']:16s} family {m['family']:5s} {human_bytes(m['bytes']):>9s}  {m['path']}")
    return 0


def run_bench(args) -> int:
    from . import bench
    from .codec import load_model

    files = sorted(p for p in args.folder.iterdir() if p.is_file() and p.suffix.lower() in
                   (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"))[: args.limit]
    if not files:
        raise FileNotFoundError(f"{args.folder}: no images")
    bench.check_codecs(args.codecs.split(","))
    model = load_model(args.model, device=args.device, family=args.family)
    points = args.bits or bench.DEFAULT_POINTS[model.family.name]
    codecs = bench.codecs_for(model, points.split(","), args.effort)
    partial = bench.PartialRows(args.out / "results.partial.csv")
    with _progress(2 * len(files), "img") as bar:
        rows = bench.run(files, codecs, args.codecs.split(","), args.metrics.split(","), args.jobs, bar.update,
                         partial)
    partial.close()
    written = bench.write_outputs(rows, args.out)
    partial.path.unlink()
    print(bench.summary_table(rows))
    print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0


def run_fsck(args) -> int:
    from .fsck import check
    from .store import Store

    with Store(args.store, create=False) as store:
        report = check(store, repair=args.repair)
    for problem in report.problems:
        print(f"sdfs fsck: {args.store}: {problem}")
    for fix in report.repaired:
        print(f"sdfs fsck: {args.store}: repaired: {fix}")
    state = "clean" if report.clean else f"{len(report.problems)} problems" + (", repaired" if args.repair else "")
    print(f"{args.store}: {report.checked_inodes} inodes, {report.checked_blobs} blobs checked: {state}")
    return 0 if report.clean or args.repair else 1


def run_info(args) -> int:
    from .codec import Codec, ContainerError

    status = 0
    for path in args.inputs:
        try:
            info = Codec.info(path.read_bytes())
        except (OSError, ContainerError, ValueError) as exc:
            log.error("%s: %s", path, exc)
            status = 1
            continue
        shrunk = "" if info.coded_size == (info.width, info.height) else " (coded at {}x{})".format(*info.coded_size)
        print(f"{path}: {info.width}x{info.height}{shrunk} {info.mode}, {info.family} latent {info.latent_shape} by "
              f"{info.encoder}, {info.quantizer} {info.levels} levels, {info.coder} coder, {info.bytes} bytes, "
              f"{info.bpp:.3f} bpp, restoration filter {info.restoration}"
              f"{f', for decoder {info.decoder}' if info.decoder else ''}")
    return status


FSTAB_IGNORED = {"defaults", "auto", "noauto", "nofail", "_netdev", "user", "users", "nouser", "rw", "dev", "nodev",
                 "suid", "nosuid", "exec", "noexec", "async", "atime", "noatime", "relatime"}


def fstab_main(argv: Sequence[str] | None = None) -> int:
    """``mount.fuse.sdfs STORE MOUNTPOINT [-o OPTIONS]``: what mount(8) runs for a fuse.sdfs fstab line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print("usage: mount.fuse.sdfs STORE MOUNTPOINT [-o options]", file=sys.stderr)
        return 2
    store, mountpoint, rest = args[0], args[1], args[2:]
    options = []
    for i, arg in enumerate(rest):
        if arg == "-o" and i + 1 < len(rest):
            options += rest[i + 1].split(",")
    command = ["mount", store, mountpoint]
    passed = []
    for option in filter(None, options):
        key, _, value = option.partition("=")
        if key in FSTAB_IGNORED or key.startswith("x-") or key.startswith("comment="):
            continue
        if key in ("ro", "allow_other"):
            passed.append(key)
        elif key in ("cache_size", "model", "device", "family", "log", "quality_floor") and value:
            command += [f"--{key.replace('_', '-')}", value]
        elif key == "keep_originals":
            command.append("--keep-originals")
        else:
            print(f"mount.fuse.sdfs: unknown option {option!r}", file=sys.stderr)
            return 2
    if passed:
        command += ["-o", ",".join(passed)]
    return main(command)


if __name__ == "__main__":
    sys.exit(main())
