"""sdfs bench on small crops: budgets are respected, outputs are written, BD-rate is computed right."""

from __future__ import annotations

import csv
import math

import numpy as np
from PIL import Image

from sdfs.bench import Row, bd_rate, upper_hull, read_rows, summary_table, where_fitted
from tests.conftest import KODAK
from tests.mountutil import sdfs


def test_bd_rate_of_known_curves():
    reference = [(0.1, 20.0), (0.2, 24.0), (0.4, 28.0)]
    assert abs(bd_rate(reference, reference)) < 1e-9
    half = [(b / 2, q) for b, q in reference]
    assert abs(bd_rate(reference, half) + 50.0) < 1e-6
    assert math.isnan(bd_rate(reference, [(0.1, 40.0), (0.2, 45.0)]))  # no common quality range


def test_the_sdfs_curve_keeps_only_settings_worth_choosing():
    points = [(0.30, 26.0), (0.10, 24.0), (0.18, 23.5), (0.20, 25.5), (0.25, 25.5)]
    assert upper_hull(points) == [(0.10, 24.0), (0.20, 25.5), (0.30, 26.0)]


def test_a_setting_under_the_chord_of_two_others_is_left_out():
    """Half the photos at 0.20 bpp and half at 0.30 average 0.25 bpp and 26.0: above 25.8 there."""
    points = [(0.10, 24.0), (0.20, 25.5), (0.25, 25.8), (0.30, 26.5), (0.40, 26.9)]
    assert upper_hull(points) == [(0.10, 24.0), (0.20, 25.5), (0.30, 26.5), (0.40, 26.9)]
    assert upper_hull([(0.1, 20.0), (0.2, 21.0), (0.3, 22.0)]) == [(0.1, 20.0), (0.2, 21.0), (0.3, 22.0)]


def test_a_codec_that_misses_small_budgets_is_compared_where_it_fits():
    nan = float("nan")
    rows = []
    for image in "abcd":
        for point, bpp, quality in (("b3", 0.1, 20.0), ("b4", 0.2, 22.0), ("b5", 0.3, 24.0)):
            rows.append(Row(image, f"sdfs {point}", point, 0, bpp, quality, nan, nan))
            if point != "b3" or image == "a":  # WebP cannot get down to the b3 budget on b, c, d
                rows.append(Row(image, "webp", point, 0, bpp, quality - 1, nan, nan))
    images, points, values = where_fitted(rows)["webp"]
    assert images == list("abcd") and points == ["b4", "b5"]
    assert abs(values["psnr"] - (1.5 ** -0.5 - 1) * 100) < 1e-6  # one dB better is half a 1.5x rate step
    assert "vs webp  4/4 images, b4,b5: psnr -18.4%" in summary_table(rows)


def test_the_summary_lists_points_by_size_and_says_why_a_bd_rate_is_missing():
    """Points like 10L come after 4L, and a curve whose only overlap lies above 0.5 bpp has no BD-rate."""
    nan = float("nan")
    rows = []
    for point, bpp, quality in (("l4", 0.2, 25.0), ("l10", 0.45, 28.0), ("l12", 0.6, 29.5)):
        rows.append(Row("a", f"sdfs {point}", point, 0, bpp, quality, nan, nan))
        rows.append(Row("a", "avif", point, 0, bpp, quality + 4, nan, nan))
    table = summary_table(rows)
    assert table.index("sdfs l4 ") < table.index("sdfs l10") < table.index("sdfs l12"), table
    assert "psnr n/a (avif is better at every rate: no common quality range)" in table, table


def test_bench_matches_budgets_and_writes_results(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, (y, x) in {"a.png": (100, 50), "b.png": (400, 300)}.items():  # kodim19 is 512x768
        pixels = np.asarray(Image.open(KODAK / "kodim19.png").convert("RGB"))[y:y + 176, x:x + 176]
        Image.fromarray(pixels).save(folder / name)
    out = tmp_path / "out"
    result = sdfs("bench", str(folder), "--bits", "3,40L,4@0.5", "--codecs", "jpeg,webp,jxl", "--out", str(out),
                  "--jobs", "2")
    assert "BD-rate of sdfs against each codec" in result.stdout and "vs jpeg" in result.stdout
    for name in ("results.csv", "results.json", "rd_psnr.png", "rd_msssim.png", "rd_ssimulacra2.png"):
        assert (out / name).stat().st_size > 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    budgets = {(r["image"], r["point"]): int(r["bytes"]) for r in rows if r["codec"].startswith("sdfs")}
    assert len(budgets) == 6 and {p for _, p in budgets} == {"b3", "l40", "b4s0.5"}
    assert all(budgets[(i, "b4s0.5")] < budgets[(i, "b3")] for i in ("a.png", "b.png"))
    conventional = [r for r in rows if not r["codec"].startswith("sdfs")]
    assert conventional, "no conventional codec fitted any budget"
    assert {r["codec"] for r in conventional if r["point"] == "l40"} == {"jpeg", "webp", "jxl"}
    for r in conventional:
        assert int(r["bytes"]) <= budgets[(r["image"], r["point"])]
        assert float(r["psnr"]) > 15 and float(r["msssim"]) > 0.5 and not math.isnan(float(r["ssimulacra2"]))
    assert summary_table(read_rows(out / "results.csv")) in result.stdout  # a saved run summarises as it printed


def test_an_unknown_codec_is_refused_before_any_encoding(tmp_path):
    (tmp_path / "a.png").write_bytes((KODAK / "kodim19.png").read_bytes())
    result = sdfs("bench", str(tmp_path), "--codecs", "avif,heic", "--out", str(tmp_path / "out"), check=False)
    assert result.returncode != 0 and "unknown codec 'heic'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_interrupted_bench_keeps_the_rows_it_measured(tmp_path, taesd):
    from sdfs.bench import PartialRows, run
    from sdfs.codec import Codec, CodecConfig

    paths = []
    for i, (y, x) in enumerate([(0, 0), (200, 300)]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.asarray(Image.open(KODAK / "kodim19.png").convert("RGB"))[y:y + 64, x:x + 64]).save(paths[-1])
    partial = PartialRows(tmp_path / "out" / "results.partial.csv")

    def stop_after_first_image(_count):
        raise KeyboardInterrupt

    try:
        run(paths, {"b4": Codec(taesd, CodecConfig(bits=4))}, ["jpeg"], ["psnr"], progress=stop_after_first_image,
            on_rows=partial)
    except KeyboardInterrupt:
        pass
    partial.close()
    rows = list(csv.DictReader(open(partial.path)))
    assert [(r["image"], r["codec"]) for r in rows] == [("0.png", "sdfs b4")]
    assert int(rows[0]["bytes"]) > 0 and float(rows[0]["psnr"]) > 15
