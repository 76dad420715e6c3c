#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Compare the Rust/C ratios of two `make bench` runs: the noise band.

    compare.py RUN1/results.csv RUN2/results.csv [--md OUT.md]

For every case in both runs, prints both ratios and their difference
(ratio of the medians, median of the per-round ratios, ratio of the best
samples); then
the band: the largest and the median |ratio2 - ratio1| over the cases, and
how many cases differ by more than 0.05.  The clock_us control is listed
but left out of the band.
"""
import argparse
import csv
import statistics
import sys


def load(path, col):
    with open(path, newline="") as f:
        return {(r["metric"], r["tags"], r["size"]): float(r[col])
                for r in csv.DictReader(f) if r["metric"] != "ring_reset_us"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run1")
    ap.add_argument("run2")
    ap.add_argument("--md", help="also write the comparison as Markdown")
    a = ap.parse_args()
    out = []
    for col, name in (("ratio", "Rust/C of the medians"),
                      ("ratio_paired", "median of the per-round Rust/C ratios"),
                      ("ratio_best", "Rust/C of the best samples")):
        r = compare(load(a.run1, col), load(a.run2, col), name)
        if r is None:
            return 1
        out.append(r)
    out = "\n\n".join(out)
    print(out)
    if a.md:
        with open(a.md, "w") as f:
            f.write(out + "\n")
    return 0


def compare(r1, r2, name):
    keys = [k for k in r1 if k in r2]
    if not keys:
        print("compare: no case in common", file=sys.stderr)
        return None
    lines = [f"{name}:", "",
             "| metric | case | size | run 1 | run 2 | difference |",
             "|---|---|---|---:|---:|---:|"]
    diffs = []
    for k in keys:
        d = r2[k] - r1[k]
        if k[0] != "clock_us":
            diffs.append((abs(d), k))
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {r1[k]:.3f} | {r2[k]:.3f} | {d:+.3f} |")
    diffs.sort()
    worst = diffs[-1]
    over = [k for d, k in diffs if d > 0.05]
    summary = [
        "",
        f"cases compared: {len(diffs)} (plus the clock control)",
        f"noise band |ratio2 - ratio1|: median {statistics.median(d for d, _ in diffs):.3f}, "
        f"90th percentile {diffs[int(0.9 * (len(diffs) - 1))][0]:.3f}, "
        f"max {worst[0]:.3f} ({' '.join(x for x in worst[1] if x)})",
        f"cases differing by more than 0.05: {len(over)}",
    ]
    for k in over:
        summary.append(f"  {' '.join(x for x in k if x)}: {r1[k]:.3f} -> {r2[k]:.3f}")
    return "\n".join(lines + summary)


if __name__ == "__main__":
    sys.exit(main())
