"""Summarise ``sdfs bench`` results CSVs of runs over disjoint sets of images as one run.

    python benchmarks/merge_bench.py A/results.csv B/results.csv C/results.csv --out DIR

A bench split into parallel runs (one folder of images each: the GPU runs in docs/BENCHMARKS.md)
gives the same tables, BD-rates, CSV, JSON and plots as one run over all the images. Runs over
the same images with different ``--codecs`` merge too, where their sdfs rows agree byte for byte
(sdfs encodes deterministically on one machine): the JPEG XL run of 2026-11-27 joined the earlier one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sdfs.bench import read_rows, summary_table, write_outputs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("csv", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows, seen = [], {}
    for path in args.csv:
        for row in read_rows(path):
            key = (row.image, row.codec, row.point)
            if key in seen:
                earlier, where = seen[key]
                if row.codec.startswith("sdfs") and row.bytes == earlier.bytes:
                    continue  # the same encode, measured again by a run for other codecs
                raise SystemExit(f"{path}: {row.image} {row.codec} {row.point} is also in {where}")
            seen[key] = (row, path)
            rows.append(row)
    print(summary_table(rows))
    for path in write_outputs(rows, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
