"""End-to-end: real mounts of real stores with real images, through the daemonising CLI."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import KODAK, psnr
from tests.library import KODAK_FILES, check_library, expected_pixels
from tests.mountutil import mounted, sdfs, stats, wait_for_encoder

def sdfs_decode_psnr(tmp_path: Path) -> dict[str, float]:
    """The PSNR that `sdfs encode` + `sdfs decode` give: the bar for a photo the mount stores as a latent."""
    out = tmp_path / "cli"
    sdfs("encode", *[str(KODAK / n) for n in KODAK_FILES], "-o", f"{out}/enc/", "-q")
    sdfs("decode", f"{out}/enc", "-o", f"{out}/dec/", "-q")
    return {n: psnr(np.asarray(Image.open(out / "dec" / n)), expected_pixels(KODAK / n)) for n in KODAK_FILES}


def test_library_in_and_out_survives_remount(tmp_path, library):
    store, mnt = tmp_path / "store", tmp_path / "mnt"
    bar = sdfs_decode_psnr(tmp_path)
    with mounted(store, mnt):
        subprocess.run(["cp", "-r", str(library), str(mnt / "photos")], check=True)
        # before the encoder has run, images already read as PNGs of their exact size
        check_library(library, mnt / "photos", {})
        wait_for_encoder(mnt)
        check_library(library, mnt / "photos", bar)
        # the default quality guard (ssimulacra2:30) keeps the smallest file meeting the floor: kodim15's
        # sd3 latent would meet it (about 40), but AVIF meets it in fewer bytes than the latent's blob can
        # have, so the latent is never decoded to be judged
        guard = json.loads(os.getxattr(mnt / "photos" / "kodim15.png", "user.sdfs.guard"))
        assert guard["floor"] == "ssimulacra2:30" and guard["avif"]["score"] >= 30
        assert guard["avif"]["bytes"] < guard["latent"]["at_least"] < (library / "kodim15.png").stat().st_size
        codec = os.getxattr(mnt / "photos" / "kodim15.png", "user.sdfs.codec")
        assert codec.startswith(b"avif") and b"latent not judged" in codec
        assert os.getxattr(mnt / "photos" / "notes.txt", "user.sdfs.codec").startswith(b"original")
        # rsync -a in (temp file + rename) and out
        subprocess.run(["rsync", "-a", f"{library}/", str(mnt / "synced")], check=True)
        subprocess.run(["rsync", "-a", f"{mnt / 'synced'}/", str(tmp_path / "out")], check=True)
        assert (tmp_path / "out" / "notes.txt").read_bytes() == (library / "notes.txt").read_bytes()
        assert Image.open(tmp_path / "out" / "kodim03.png").size == (768, 512)
        # mv, mkdir -p, cp -p, rm -r
        subprocess.run(["mkdir", "-p", str(mnt / "a" / "b" / "c")], check=True)
        subprocess.run(["mv", str(mnt / "synced" / "notes.txt"), str(mnt / "a" / "b" / "c" / "moved.txt")], check=True)
        os.chmod(library / "notes.txt", 0o640)
        os.utime(library / "notes.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_987_654_321))
        subprocess.run(["cp", "-p", str(library / "notes.txt"), str(mnt / "a" / "kept.txt")], check=True)
        kept = os.stat(mnt / "a" / "kept.txt")
        assert kept.st_mode & 0o777 == 0o640 and kept.st_mtime_ns == 1_600_000_000_987_654_321
        subprocess.run(["rm", "-r", str(mnt / "synced")], check=True)
        assert not (mnt / "synced").exists()
    with mounted(store, mnt):
        check_library(library, mnt / "photos", bar)
        assert (mnt / "a" / "b" / "c" / "moved.txt").read_bytes() == (library / "notes.txt").read_bytes()
        assert os.stat(mnt / "a" / "kept.txt").st_mtime_ns == 1_600_000_000_987_654_321


def test_concurrent_readers_cause_one_decode(tmp_path):
    store, mnt = tmp_path / "store", tmp_path / "mnt"
    with mounted(store, mnt, "--cache-size", "64M"):
        shutil.copy(KODAK / "kodim07.png", mnt / "p.png")
        wait_for_encoder(mnt)
    with mounted(store, mnt):  # a fresh daemon: nothing cached
        before = stats(mnt)["decodes"]
        results, barrier = [None] * 8, threading.Barrier(8)

        def read(i):
            barrier.wait()
            results[i] = (mnt / "p.png").read_bytes()

        threads = [threading.Thread(target=read, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert stats(mnt)["decodes"] - before == 1
        assert all(r == results[0] for r in results) and len(results[0]) == os.stat(mnt / "p.png").st_size


def test_concurrent_writers_lose_nothing(tmp_path):
    store, mnt = tmp_path / "store", tmp_path / "mnt"
    payloads = {f"w{i}/f{j}.txt": os.urandom(1000 + 37 * j) for i in range(8) for j in range(5)}
    with mounted(store, mnt):
        (mnt / "d").mkdir()

        def write(i):
            for j in range(5):
                name = f"w{i}/f{j}.txt"
                (mnt / "d" / name.replace("/", "_")).write_bytes(payloads[name])

        threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        names = sorted(os.listdir(mnt / "d"))
        assert len(names) == 40
        for name, data in payloads.items():
            assert (mnt / "d" / name.replace("/", "_")).read_bytes() == data


def test_second_daemon_and_wrong_model_are_refused(tmp_path):
    store, mnt, other = tmp_path / "store", tmp_path / "mnt", tmp_path / "other"
    other.mkdir()
    try:
        with mounted(store, mnt):
            result = sdfs("mount", str(store), str(other), "-f", check=False, timeout=120)
            assert result.returncode != 0 and "in use" in result.stderr
        result = sdfs("mount", str(store), str(other), "--model", "madebyollin/taesd", "-f", check=False, timeout=120)
        assert result.returncode != 0 and "sd3 latents" in result.stderr and "cannot decode" in result.stderr
        assert not os.path.ismount(other)
    finally:
        if os.path.ismount(other):
            subprocess.run(["fusermount3", "-uz", str(other)], check=False)


def test_a_read_is_served_while_a_refining_encode_runs(tmp_path):
    """With --effort the encoder refines for seconds to minutes; reads must not queue behind it."""
    store, mnt = tmp_path / "store", tmp_path / "mnt"
    kodim = np.asarray(Image.open(KODAK / "kodim19.png").convert("RGB"))
    Image.fromarray(kodim[:64, :64]).save(tmp_path / "small.png")
    Image.fromarray(kodim[200:392, 200:392]).save(tmp_path / "big.png")
    options = ("--effort", "2", "--quality-floor", "off")  # floor off: the small file is read by decoding a latent
    with mounted(store, mnt, *options):
        shutil.copy(tmp_path / "small.png", mnt / "small.png")
        wait_for_encoder(mnt)
    with mounted(store, mnt, *options):  # a fresh daemon: nothing cached
        shutil.copy(tmp_path / "big.png", mnt / "big.png")  # 30 refinement steps at 192x192: many seconds
        time.sleep(1.0)
        assert stats(mnt)["queue"] == 1
        decodes = stats(mnt)["decodes"]
        started = time.monotonic()
        data = (mnt / "small.png").read_bytes()
        waited = time.monotonic() - started
        still_encoding = stats(mnt)["queue"] == 1
        print(f"read of a latent served in {waited:.2f} s during a refining encode")
        assert stats(mnt)["decodes"] == decodes + 1 and Image.open(io.BytesIO(data)).size == (64, 64)
        assert still_encoding, "the read waited for the refining encode to finish"


def test_a_store_made_with_scale_and_levels_keeps_photos_shrunk_and_serves_them_full_size(tmp_path):
    store, mnt = tmp_path / "store", tmp_path / "mnt"
    crop = np.asarray(Image.open(KODAK / "kodim19.png").convert("RGB"))[200:392, 200:392]
    Image.fromarray(crop).save(tmp_path / "photo.png")
    for name, options in {"full": ("--levels", "24"), "half": ("--scale", "0.5", "--levels", "24")}.items():
        sdfs("encode", str(tmp_path / "photo.png"), "-o", str(tmp_path / f"{name}.sdl"), "-q", *options)
    with mounted(store, mnt, "--scale", "0.5", "--levels", "24", "--quality-floor", "off"):
        shutil.copy(tmp_path / "photo.png", mnt / "photo.png")
        wait_for_encoder(mnt)
        stored = int(os.getxattr(mnt / "photo.png", "user.sdfs.stored_bytes"))
        served = np.asarray(Image.open(mnt / "photo.png"))
    assert stored == (tmp_path / "half.sdl").stat().st_size < 0.6 * (tmp_path / "full.sdl").stat().st_size
    info = sdfs("info", str(tmp_path / "half.sdl")).stdout
    assert "192x192 (coded at 96x96) RGB" in info and "uniform 24 levels" in info
    assert served.shape == crop.shape and psnr(served, crop) > 20
