#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The paired Rust/C ratio of each case over several `make bench` runs.

    span.py RUN1/results.csv RUN2/results.csv ... [--above 1.00]

One line per case found in every run: each run's paired ratio (the median
of the per-round ratios), then their lowest and highest.  --above X lists
only the cases whose highest paired ratio is above X (--above 1.00: the
cases where the module was slower than KVM's C path in some run).  What span.py does not do is judge noise: Documentation/bench.rst
"Noise band" says how far a ratio moves between runs.
"""
import argparse
import sys

from compare import load


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--above", type=float)
    a = ap.parse_args()
    runs = [load(p, "ratio_paired") for p in a.runs]
    keys = [k for k in runs[0] if all(k in r for r in runs[1:])]
    if not keys:
        print("span: no case in every run", file=sys.stderr)
        return 1
    print("| metric | case | size | " +
          " | ".join(f"run {i + 1}" for i in range(len(runs))) +
          " | lowest | highest |")
    print("|---|---|---|" + "---:|" * (len(runs) + 2))
    for k in keys:
        v = [r[k] for r in runs]
        if a.above is not None and max(v) <= a.above:
            continue
        print(f"| {k[0]} | {k[1]} | {k[2]} | " +
              " | ".join(f"{x:.3f}" for x in v) +
              f" | {min(v):.3f} | {max(v):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
