"""sdfs import / export / stats / fsck / models against a real store, and a mount of the imported store."""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter

from PIL import Image

from sdfs.stats import LABELS
from tests.library import KODAK_FILES, check_library
from tests.mountutil import mounted, sdfs


def test_import_matches_cp_through_a_mount_and_resumes(tmp_path, library):
    store = tmp_path / "store"
    result = sdfs("import", str(library), str(store))
    assert "imported 8 files (3 images" in result.stderr, result.stderr
    stats = sdfs("stats", str(store)).stdout
    assert "files        8 in 3 directories" in stats and "quality floor ssimulacra2:30" in stats
    assert "queue        0 files" in stats
    assert "clean" in sdfs("fsck", str(store)).stdout
    again = sdfs("import", str(library), str(store))
    assert "imported 0 files" in again.stderr and "8 already there" in again.stderr
    with mounted(store, tmp_path / "mnt") as mnt:
        check_library(library, mnt, {})
        # the codec mix of `sdfs stats` is what each image's user.sdfs.codec says it is stored as
        kinds = Counter(os.getxattr(mnt / name, "user.sdfs.codec").split()[0].decode()
                        for name in (*KODAK_FILES, "sub/concert.jpg"))
        for kind, count in kinds.items():
            assert re.search(rf"{re.escape(LABELS[kind])}\s+{count} files", stats), (kinds, stats)
        assert os.stat(mnt / "notes.txt").st_mtime_ns == os.stat(library / "notes.txt").st_mtime_ns


def test_export_writes_the_tree_in_the_chosen_format(tmp_path, library):
    store = tmp_path / "store"
    sdfs("import", str(library), str(store))
    out = tmp_path / "out"
    result = sdfs("export", str(store), str(out), "--format", "jpeg")
    assert "exported 8 files (3 images as jpeg)" in result.stderr, result.stderr
    assert Image.open(out / KODAK_FILES[0]).format == "JPEG"
    assert Image.open(out / "sub" / "concert.jpg").size == (400, 267)
    assert (out / "notes.txt").read_bytes() == (library / "notes.txt").read_bytes()
    assert (out / "broken.jpg").read_bytes() == (library / "broken.jpg").read_bytes()
    shutil.rmtree(out)
    sdfs("export", str(store), str(out))
    assert Image.open(out / KODAK_FILES[1]).format == "PNG"


def test_models_lists_the_cache():
    listing = sdfs("models").stdout
    assert "madebyollin/taesd " in listing and "family sd1" in listing and "family sd3" in listing
