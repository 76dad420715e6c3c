#!/usr/bin/env python3
"""Per-call guest kernel instructions by function, C path against Rust path.

Reads insn_window.so's counts (PHASE k, then "ADDR INSNS EXECS" per
translation block), the kernel's System.map and the module symbols the
guest printed (KALLSYMS lines of console.log), and the workloads' own
"PHASE k NAME calls=N us_per_call=T" lines (ioctl_profile's, and
dirty_bench's ring phases with KD_PROFILE_PHASE); phases of one name add up.
Each block's instructions go to the function whose symbol is the nearest
at or below its address.
"""
import argparse
import bisect
import collections
import re
import statistics


def symbols(map_path, console):
    syms = []
    with open(map_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] in "tTwW":
                syms.append((int(parts[0], 16), parts[2]))
    for line in console:
        m = re.match(r"KALLSYMS ([0-9a-f]+) [tT] (\S+)\s+\[(\S+)\]", line)
        if m:
            syms.append((int(m.group(1), 16), "%s [%s]" % (m.group(2), m.group(3))))
    syms.sort()
    return [a for a, _ in syms], [n for _, n in syms]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--map", required=True)
    ap.add_argument("--console", required=True)
    ap.add_argument("--counts", required=True)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()

    console = open(args.console, errors="replace").read().splitlines()
    addrs, names = symbols(args.map, console)
    phases = {}
    calls = collections.Counter()
    wall = collections.Counter()
    per_phase_us = collections.defaultdict(list)
    for line in console:
        m = re.match(r"PHASE (\d+) (\S+) calls=(\d+) us_per_call=([\d.]+)", line)
        if m:
            phases[int(m.group(1))] = m.group(2)
            calls[m.group(2)] += int(m.group(3))
            wall[m.group(2)] += int(m.group(3)) * float(m.group(4))
            per_phase_us[m.group(2)].append(float(m.group(4)))

    per_name = collections.defaultdict(collections.Counter)
    name = None
    with open(args.counts) as f:
        for line in f:
            if line.startswith("PHASE "):
                name = phases.get(int(line.split()[1]))
                continue
            if name is None:
                continue
            a, insns, execs = line.split()
            i = bisect.bisect_right(addrs, int(a, 16)) - 1
            fn = names[i] if i >= 0 else "?"
            per_name[name][fn] += int(insns) * int(execs)

    for op in ("clear", "get", "ring"):
        c, r = op + "-c", op + "-rust"
        if not calls[c] or not calls[r]:
            if op != "ring":
                print("%s: phases missing" % op)
            continue
        nc, nr = calls[c], calls[r]
        fc = {k: v / nc for k, v in per_name[c].items()}
        fr = {k: v / nr for k, v in per_name[r].items()}
        tc, tr = sum(fc.values()), sum(fr.values())
        print("== %s: %d calls each; instructions per call C %.0f, Rust %.0f "
              "(Rust/C %.3f); wall us per call C %.2f, Rust %.2f"
              % (op, nc, tc, tr, tr / tc if tc else 0, wall[c] / nc, wall[r] / nr))
        if len(per_phase_us[c]) > 1:
            # Phases of one call each (the ring): the mean above carries
            # the first call's translation; the median does not.
            print("   median wall us per call over %d phases: C %.2f, Rust %.2f"
                  % (len(per_phase_us[c]), statistics.median(per_phase_us[c]),
                     statistics.median(per_phase_us[r])))
        rows = sorted(set(fc) | set(fr),
                      key=lambda k: -abs(fr.get(k, 0) - fc.get(k, 0)))
        print("%10s %10s %10s  %s" % ("C", "Rust", "Rust-C", "function"))
        for k in rows[:args.top]:
            a, b = fc.get(k, 0), fr.get(k, 0)
            if max(a, b) < 0.5:
                continue
            print("%10.1f %10.1f %+10.1f  %s" % (a, b, b - a, k))
        print()


if __name__ == "__main__":
    main()
