#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the console of a `make bench` VM run into tables and a plot.

    report.py --console out/bench/console.log --out out/bench [--wall SECS]
              [--commit REV] [--flavour KERNEL]

Reads the RESULT lines of selftests/vm/bench.sh (one per metric, path and
round; value = that run's median) and writes, in --out:

  raw.csv              every RESULT line
  results.csv          per case: C and Rust medians over the rounds, the
                       Rust/C ratio, the spread of each path
  results.md           the same as a Markdown table, with the run's settings
  results.rst          the summary Documentation/bench.rst keeps: per case
                       class, the range over its sizes of the paired Rust/C
                       ratio, as an rst table headed by the commit and the
                       kernel flavour measured
  latency_vs_size.png  latency against guest memory size, C vs Rust
  migration.csv        per migration mode and path: the medians of
                       bench.sh migrate's figures (also in results.md,
                       with Rust/C ratios)
  shared.csv           the shared class (metrics shared_*), per slot size
                       and dirty share: the sync of the shared bitmap
                       against the Rust path's GET + write-protect-all and
                       against the C path's classic GET, paired ratios;
                       the scan's GB/s against anonymous memory's (also in
                       results.md, and its ratios in results.rst)

Ratios are "Rust/C time": above 1 means Rust is slower.  For throughputs
(*_eps) that is C/Rust.  The shared class's are "shared/b" and "shared/c":
the shared bitmap's sync time over the other path's, below 1 the shared
bitmap faster.
"""
import argparse
import csv
import datetime
import os
import re
import statistics
import sys

META = ("round", "path", "metric", "size", "value", "n", "min", "max")
# Table order; ring_reset_us is in raw.csv and the plot (its throughput,
# ring_reset_eps, is in the table).
ORDER = ["get_us", "get_manual_us", "clear_us", "clear_empty_us",
         "ring_reset_eps", "perf_get_us", "perf_clear_us", "perf_dirty_us",
         "perf_enable_us", "round_us", "read_us", "write_us", "log_on_us",
         "log_on_write_us", "clock_us"]
DESCR = {
    "get_us": "GET_DIRTY_LOG, us/call",
    "get_manual_us": "GET_DIRTY_LOG manual protect, us/call",
    "clear_us": "CLEAR_DIRTY_LOG written pages (64; dirty=100: the whole slot), us/call",
    "clear_empty_us": "CLEAR_DIRTY_LOG 64 unmapped pages, us/call",
    "ring_reset_eps": "RESET_DIRTY_RINGS, entries/s",
    "ring_reset_us": "RESET_DIRTY_RINGS, us/call",
    "perf_get_us": "perf_test GET avg, us",
    "perf_clear_us": "perf_test CLEAR avg, us",
    "perf_dirty_us": "perf_test dirty memory time, us",
    "perf_enable_us": "perf_test enable logging, us",
    "round_us": "harvest round: C classic GET vs Rust GET + WP-all, us",
    "read_us": "guest reads every page after a round, us",
    "write_us": "guest writes the dirty pages after a round, us",
    "log_on_us": "dirty logging on, slot fully mapped: C split + WP vs Rust WP-all, us",
    "log_on_write_us": "guest writes every page after logging on, us",
    "clock_us": "two clock_gettime (control), us",
}


def size_mib(s):
    m = re.fullmatch(r"(\d+)([MG])", s or "")
    if not m:
        return 0
    return int(m.group(1)) * (1024 if m.group(2) == "G" else 1)


def parse(console):
    rows, info = [], []
    for line in open(console, errors="replace"):
        line = line.strip()
        if line.startswith("BENCHINFO "):
            info.append(line[len("BENCHINFO "):])
        if not line.startswith("RESULT "):
            continue
        kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        if not all(k in kv for k in ("round", "path", "metric", "value")):
            continue
        tags = " ".join(f"{k}={v}" for k, v in kv.items() if k not in META)
        rows.append({"metric": kv["metric"], "size": kv.get("size", ""),
                     "tags": tags, "path": kv["path"],
                     "round": int(kv["round"]), "value": float(kv["value"]),
                     "n": kv.get("n", ""), "min": kv.get("min", ""),
                     "max": kv.get("max", "")})
    return rows, info


def is_rate(metric):
    return metric.endswith("_eps")


def summarize(rows):
    cases, mins = {}, {}
    for r in rows:
        key = (r["metric"], r["tags"], r["size"])
        cases.setdefault(key, {"c": {}, "rust": {}})[r["path"]][r["round"]] = r["value"]
        lo = float(r["min"]) if r["min"] not in ("", None) else r["value"]
        # For a throughput the best sample is the largest.
        if is_rate(r["metric"]) and r["max"] not in ("", None):
            lo = float(r["max"])
        mins.setdefault(key, {"c": [], "rust": []})[r["path"]].append(lo)
    out = []
    for (metric, tags, size), by in cases.items():
        c, rust = list(by["c"].values()), list(by["rust"].values())
        if not c or not rust:
            continue
        cm, rm = statistics.median(c), statistics.median(rust)
        cb = statistics.median(mins[(metric, tags, size)]["c"])
        rb = statistics.median(mins[(metric, tags, size)]["rust"])
        if is_rate(metric):
            ratio = cm / rm if rm else float("nan")
            ratio_best = cb / rb if rb else float("nan")
            paired = [by["c"][k] / by["rust"][k] for k in by["c"] if k in by["rust"] and by["rust"][k]]
        else:
            ratio = rm / cm if cm else float("nan")
            ratio_best = rb / cb if cb else float("nan")
            paired = [by["rust"][k] / by["c"][k] for k in by["c"] if k in by["rust"] and by["c"][k]]
        out.append({
            "metric": metric, "tags": tags, "size": size,
            "c_median": cm, "rust_median": rm, "ratio": ratio, "ratio_best": ratio_best,
            "ratio_paired": statistics.median(paired) if paired else float("nan"),
            "ratio_min": min(paired) if paired else float("nan"),
            "ratio_max": max(paired) if paired else float("nan"),
            "c_spread_pct": 100 * (max(c) - min(c)) / cm if cm else float("nan"),
            "rust_spread_pct": 100 * (max(rust) - min(rust)) / rm if rm else float("nan"),
            "rounds": min(len(c), len(rust)),
        })

    def order(s):
        m = ORDER.index(s["metric"]) if s["metric"] in ORDER else len(ORDER)
        return (m, s["tags"], size_mib(s["size"]))
    return sorted(out, key=order)


def rust_only(rows):
    """Cases measured on the Rust path alone (wpall_us: the C path has no
    such ioctl): per case the median over the rounds, and the smallest and
    largest round."""
    cases = {}
    for r in rows:
        key = (r["metric"], r["tags"], r["size"])
        cases.setdefault(key, {}).setdefault(r["path"], []).append(r["value"])
    out = [{"metric": m, "tags": t, "size": s, "median": statistics.median(by["rust"]),
            "lo": min(by["rust"]), "hi": max(by["rust"]), "rounds": len(by["rust"])}
           for (m, t, s), by in cases.items() if "rust" in by and "c" not in by]
    return sorted(out, key=lambda x: (x["metric"], x["tags"], size_mib(x["size"])))


def fmt(v, metric):
    if is_rate(metric):
        return f"{v / 1e6:.3g}M" if v >= 1e6 else f"{v / 1e3:.3g}k"
    return f"{v:,.0f}" if v >= 1000 else f"{v:.4g}"


def write_csv(path, rows, fields):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in fields})


def write_md(path, summary, info, wall, rounds, alone=()):
    with open(path, "w") as f:
        f.write(f"# make bench: Rust/C, {datetime.date.today()}\n\n")
        for i in info:
            f.write(f"- {i}\n")
        f.write(f"- rounds: up to {rounds} per case (column n), C and Rust interleaved")
        if wall:
            f.write(f"; wall time of the run: {wall} s")
        f.write("\n\nRust/C is a time ratio (for entries/s: C/Rust): above 1 means Rust is "
                "slower; rows above 1.05 in bold.  Per-round: the range of the ratio of "
                "each round's pair; paired: their median (each pair comes from one process, "
                "so it is the estimate least moved by drift or one odd VM instance).  Best: the same ratio of the medians of each run's best "
                "sample (fastest call), less sensitive to interference from other load.  "
                "Spread: (max - min) / median over the rounds.\n\n")
        if not summary:
            f.write("(no Rust/C case here; other tables below, if any)\n")
            return
        f.write("| metric | case | size | C median | Rust median | Rust/C | per-round | paired | best | "
                "C spread | Rust spread | n |\n|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
        for s in summary:
            if s["metric"] == "ring_reset_us":
                continue
            ratio = f"{s['ratio']:.3f}"
            if s["ratio"] > 1.05:
                ratio = f"**{ratio}**"
            f.write(f"| {DESCR.get(s['metric'], s['metric'])} | {s['tags']} | {s['size']} | "
                    f"{fmt(s['c_median'], s['metric'])} | {fmt(s['rust_median'], s['metric'])} | "
                    f"{ratio} | {s['ratio_min']:.2f}-{s['ratio_max']:.2f} | {s['ratio_paired']:.3f} | "
                    f"{s['ratio_best']:.3f} | "
                    f"{s['c_spread_pct']:.0f}% | {s['rust_spread_pct']:.0f}% | {s['rounds']} |\n")
        if alone:
            f.write("\nRust path only (wpall_us: KVM_WRITE_PROTECT_ALL_MEM with the slot "
                    "mapped, us; the C path has no such ioctl):\n\n"
                    "| metric | case | size | median | rounds' range | n |\n"
                    "|---|---|---|---:|---|---:|\n")
            for a in alone:
                f.write(f"| {a['metric']} | {a['tags']} | {a['size']} | {fmt(a['median'], a['metric'])} | "
                        f"{fmt(a['lo'], a['metric'])}-{fmt(a['hi'], a['metric'])} | {a['rounds']} |\n")


# The rows of the summary (results.rst): label, metric, which cases (by
# their tags), and the case's size as the table shows it (the ring reset's
# is its ring's entries).  Rows without a case in the run are left out.
def _tag(key, val):
    return lambda tags: re.search(rf"(^| ){key}={val}( |$)", tags) is not None


def _entries(tags, size):
    m = re.search(r"entries=(\d+)", tags)
    return f"{int(m.group(1)) // 1024}K" if m else size


SUMMARY = [
    ("GET, 0 % dirty", "get_us", _tag("dirty", "0")),
    ("GET, 1 % dirty", "get_us", _tag("dirty", "1")),
    ("GET, 100 % dirty", "get_us", _tag("dirty", "100")),
    ("GET, manual protect (a copy)", "get_manual_us", lambda t: True),
    ("CLEAR of a whole written slot", "clear_us", _tag("dirty", "100")),
    ("CLEAR, 64 written pages", "clear_us", _tag("pages", "64")),
    ("CLEAR, 64 never-mapped pages", "clear_empty_us", lambda t: True),
    ("ring reset, stride 67 (C/Rust entries/s)", "ring_reset_eps", _tag("stride", "67")),
    ("ring reset, stride 1 (C/Rust entries/s)", "ring_reset_eps", _tag("stride", "1")),
    ("perf_test GET average, manual protect", "perf_get_us", _tag("mode", "manual")),
    ("perf_test GET average, classic", "perf_get_us", _tag("mode", "nomanual")),
    ("perf_test CLEAR average", "perf_clear_us", lambda t: True),
    ("WP-all round against classic GET, 0 % dirty", "round_us", _tag("dirty", "0")),
    ("WP-all round against classic GET, 1 % dirty", "round_us", _tag("dirty", "1")),
    ("WP-all round against classic GET, 100 % dirty", "round_us", _tag("dirty", "100")),
    ("guest reads after a 1 % round", "read_us", _tag("dirty", "1")),
    ("guest writes after a 1 % round", "write_us",
     lambda t: _tag("dirty", "1")(t) and "after=" not in t),
    ("dirty logging on, slot fully mapped", "log_on_us", lambda t: "writes=0" not in t),
]


def fmt_ratio(v):
    """Two decimals; two significant digits below 0.1 (0.006, 0.028)."""
    return f"{v:.2f}" if v >= 0.1 else f"{v:.2g}"


def sizes_label(labels):
    """64M-4G for three sizes or more, 256M, 1G for two, 1G for one."""
    if len(labels) > 2:
        return f"{labels[0]}-{labels[-1]}"
    return ", ".join(labels)


def summary_rows(summary, mig):
    rows = []
    for label, metric, want in SUMMARY:
        cases = [s for s in summary if s["metric"] == metric and want(s["tags"])
                 and s["ratio_paired"] == s["ratio_paired"]]
        if not cases:
            continue
        cases.sort(key=lambda c: size_mib(_entries(c["tags"], c["size"])) or
                   int(_entries(c["tags"], c["size"]).rstrip("K") or 0))
        names = []
        for c in cases:
            n = _entries(c["tags"], c["size"])
            if n not in names:
                names.append(n)
        lo = min(c["ratio_paired"] for c in cases)
        hi = max(c["ratio_paired"] for c in cases)
        ratio = f"{lo:.3f}" if lo == hi else f"{fmt_ratio(lo)}-{fmt_ratio(hi)}"
        rows.append((label, sizes_label(names), ratio))
    c_per = {r["mode"]: r["sync_us_per_sync"] for r in mig if r["path"] == "c"}
    vs = [f"{r['mode']} {r['sync_us_per_sync'] / c_per[r['mode']]:.2f}"
          for r in mig if r["path"] == "rust" and c_per.get(r["mode"])]
    if vs:
        guest = mig[0]["guest"]
        m = re.search(r"mib=(\d+)", guest)
        v = re.search(r"vcpus=(\d+)", guest)
        label = f"{m.group(1)}M, {v.group(1)} vCPUs" if m and v else "migrations"
        rows.append(("migration, sync ioctl time per sync vs C", label, ", ".join(vs)))
    return rows


def write_rst(path, summary, mig, info, wall, commit, flavour, sh=()):
    """The summary table of Documentation/bench.rst, as rst.  The shared
    class's rows are time ratios of the shared bitmap to the path named."""
    kv = dict(f.split("=", 1) for i in info for f in i.split() if "=" in f)
    arch = kv.get("arch", "?")
    if arch == "x86_64":
        where = "x86_64, TDP MMU (npt=1)" if kv.get("npt") in ("1", "Y") else \
            "x86_64, shadow MMU (npt=0)"
    else:
        where = f"{arch}, stage 2"
    rows = [("case", "sizes", "paired Rust/C")] + summary_rows(summary, mig) + \
        shared_summary_rows(sh)
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    rule = "  ".join("=" * n for n in w)
    with open(path, "w") as f:
        f.write(f"{where}: commit {commit or 'unknown'}, {flavour or 'test'} kernel "
                f"({kv.get('kernel', '?')})")
        if wall:
            f.write(f", {wall:,} s")
        f.write(".\n\n")
        f.write(rule + "\n")
        for i, r in enumerate(rows):
            f.write("  ".join(c.ljust(n) for c, n in zip(r, w)).rstrip() + "\n")
            if i == 0:
                f.write(rule + "\n")
        f.write(rule + "\n")


MIG_COLS = [("mig_total_ms", "total, ms"), ("mig_downtime_ms", "downtime, ms"),
            ("mig_syncs", "dirty syncs"), ("mig_sync_ioctl_us", "sync ioctls, us"),
            ("mig_sync_ioctls", "sync ioctls"), ("mig_first_sync_us", "first sync, us"),
            ("mig_memslot_us", "memslot updates, us"), ("mig_normal_pages", "pages sent"),
            ("mig_transferred_kb", "sent, KiB"), ("mig_rate_before", "guest pages/s before"),
            ("mig_rate_during", "guest pages/s during")]
MIG_MODES = ["bitmap", "classic", "ring", "wpall"]


def migration(rows):
    """Per migration mode and path (bench.sh migrate): the median of each
    figure over the rounds, the sync ioctls' time per sync, and the guest's
    write rate during the migration against its rate before it."""
    cases, guest = {}, {}
    for r in rows:
        mode = re.search(r"mode=(\w+)", r["tags"]).group(1)
        cases.setdefault((mode, r["path"]), {}).setdefault(r["metric"], []).append(r["value"])
        guest[(mode, r["path"])] = " ".join(
            f for f in r["tags"].split() if not f.startswith("mode="))
    out = []
    for (mode, path), by in cases.items():
        row = {"mode": mode, "path": path, "guest": guest[(mode, path)],
               "rounds": max(len(v) for v in by.values())}
        for m, _ in MIG_COLS:
            row[m] = statistics.median(by[m]) if m in by else float("nan")
        per = [t / n for t, n in zip(by.get("mig_sync_ioctl_us", []), by.get("mig_syncs", [])) if n]
        row["sync_us_per_sync"] = statistics.median(per) if per else float("nan")
        kept = [d / b for b, d in zip(by.get("mig_rate_before", []), by.get("mig_rate_during", [])) if b]
        row["rate_kept"] = statistics.median(kept) if kept else float("nan")
        out.append(row)
    key = {m: i for i, m in enumerate(MIG_MODES)}
    return sorted(out, key=lambda x: (key.get(x["mode"], 99), x["path"]))


# The migration table's columns: what, its key, how to print it.  Times
# are medians over the rounds; "kept": the guest's write rate during the
# migration over its rate before (the "dirty page rate during migration"
# of "Fast Write Protection", KVM Forum 2017).
MIG_TABLE = [("total, ms", "mig_total_ms"), ("downtime, ms", "mig_downtime_ms"),
             ("syncs", "mig_syncs"), ("dirty-log ioctls per sync, us", "sync_us_per_sync"),
             ("first sync's dirty-log ioctls, us", "mig_first_sync_us"),
             ("logging on/off (memslots), us", "mig_memslot_us"),
             ("guest pages/s before", "mig_rate_before"),
             ("guest pages/s during", "mig_rate_during"), ("during/before", "rate_kept")]
# Rust/C ratios: times (below 1: the module faster) and the guest's rate
# during the migration (above 1: the guest wrote faster on the module).
MIG_RATIOS = [("total", "mig_total_ms"), ("downtime", "mig_downtime_ms"),
              ("per sync", "sync_us_per_sync"), ("first sync", "mig_first_sync_us"),
              ("guest rate during", "mig_rate_during")]


def _cell(v, key):
    if v != v:
        return "-"
    if key == "rate_kept":
        return f"{v:.2f}"
    return f"{v:,.0f}"


def write_migration_md(path, mig):
    c_of = {r["mode"]: r for r in mig if r["path"] == "c"}
    base = c_of.get("bitmap")
    guest = mig[0]["guest"] if mig else ""
    with open(path, "a") as f:
        f.write(f"\n## Live migrations\n\nThe patched QEMU (selftests/vm/migrate.sh: {guest}), "
                "medians over the rounds.  Dirty-log ioctls: the time the source's "
                "GET_DIRTY_LOG, CLEAR_DIRTY_LOG, RESET_DIRTY_RINGS and WRITE_PROTECT_ALL_MEM "
                "spent in the kernel (QEMU's trace, tools/qemu/0005), per dirty sync and in "
                "the first sync alone; memslots: dirty logging turned on and off.  The guest's "
                "write rate from its status page: over a few seconds before the migration, "
                "and while it ran during the migration.\n\n"
                "| mode | path | " + " | ".join(h for h, _ in MIG_TABLE) + " | n |\n"
                "|---|---|" + "---:|" * (len(MIG_TABLE) + 1) + "\n")
        for r in mig:
            f.write(f"| {r['mode']} | {r['path']} | " +
                    " | ".join(_cell(r[k], k) for _, k in MIG_TABLE) + f" | {r['rounds']} |\n")
        f.write("\nRust/C per mode (the same mode on KVM's C path; wpall, which the C path "
                "has not, against C bitmap, QEMU's default): times below 1 are the module "
                "faster; the guest's rate during the migration above 1 is the guest writing "
                "faster on the module.\n\n"
                "| mode | against | " + " | ".join(h for h, _ in MIG_RATIOS) + " |\n"
                "|---|---|" + "---:|" * len(MIG_RATIOS) + "\n")
        for r in mig:
            if r["path"] != "rust":
                continue
            c = c_of.get(r["mode"]) or base
            if not c:
                continue
            against = "C " + c["mode"]
            cells = []
            for _, k in MIG_RATIOS:
                cells.append(f"{r[k] / c[k]:.2f}" if c[k] and c[k] == c[k] and r[k] == r[k] else "-")
            f.write(f"| {r['mode']} | {against} | " + " | ".join(cells) + " |\n")


def pct(tags):
    """The dirty share of a case's tags ("dirty=1 after=read": "1")."""
    m = re.search(r"dirty=(\d+)", tags)
    return m.group(1) if m else "?"


def plot(path, rows, arm64=False):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(metric, where=lambda r: True, x=lambda r: size_mib(r["size"])):
        """{(tags, path): {x: [values over rounds]}} for one metric."""
        out = {}
        for r in rows:
            if r["metric"] == metric and where(r):
                out.setdefault((r["tags"], r["path"]), {}).setdefault(x(r), []).append(r["value"])
        return out

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    mib = matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{v / 1024:g}G" if v >= 1024 else f"{v:g}M")
    fig, axes = plt.subplots(2, 3, figsize=(18, 10.5))

    def draw(ax, groups, label, color):
        for path, style, marker in (("c", "-", "o"), ("rust", "--", "x")):
            pts = groups.get(path)
            if not pts:
                continue
            xs = sorted(pts)
            med = [statistics.median(pts[x]) for x in xs]
            lo = [m - min(pts[x]) for m, x in zip(med, xs)]
            hi = [max(pts[x]) - m for m, x in zip(med, xs)]
            ax.errorbar(xs, med, yerr=[lo, hi], fmt=style, marker=marker, color=color,
                        capsize=3, label=f"{label} {'C' if path == 'c' else 'Rust'}")

    def panel(ax, title, specs, xlabel="guest memory of the slot / test"):
        i = 0
        for metric, where, label_of, x in specs:
            byt = {}
            for (tags, path), pts in series(metric, where, x).items():
                merged = byt.setdefault(label_of(tags), {}).setdefault(path, {})
                for xv, vals in pts.items():
                    merged.setdefault(xv, []).extend(vals)
            for label, groups in sorted(byt.items()):
                draw(ax, groups, label, colors[i % len(colors)])
                i += 1
        ax.set_title(title, fontsize=11)
        ax.set_xscale("log", base=2)
        if xlabel.startswith("guest memory"):
            ax.xaxis.set_major_formatter(mib)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("microseconds (median, bars: min-max of rounds)")
        ax.grid(True, which="both", alpha=0.3)
        if i:
            ax.legend(fontsize=8)

    size = lambda r: size_mib(r["size"])
    anyr = lambda r: True
    panel(axes[0][0], "KVM_GET_DIRTY_LOG per call (dirty_bench)", [
        ("get_us", anyr, lambda t: f"{t.replace('dirty=', '')}% dirty", size),
        ("get_manual_us", anyr, lambda t: "manual protect, all set", size)])
    panel(axes[0][1], "KVM_CLEAR_DIRTY_LOG per call (dirty_bench)", [
        ("clear_us", anyr, lambda t: "whole slot, every page written"
         if "dirty=100" in t else "64 written pages", size),
        ("clear_empty_us", anyr, lambda t: "never-mapped pages", size)])
    panel(axes[0][2], "KVM_RESET_DIRTY_RINGS per call (dirty_bench, 1G slot)", [
        ("ring_reset_us", anyr,
         lambda t: "stride " + re.search(r"stride=(\d+)", t).group(1) + " pages",
         lambda r: int(re.search(r"entries=(\d+)", r["tags"]).group(1)) // 2)],
        xlabel="entries harvested and reset per call (ring size / 2)")

    def perf_label(t):
        kv = dict(f.split("=") for f in t.split())
        lab = "manual" if kv.get("mode") == "manual" else "-g"
        if kv.get("vcpus", "1") != "1":
            lab += f", {kv['vcpus']} vCPUs"
        if kv.get("write", "100") != "100":
            lab += f", -w {kv['write']}"
        return lab
    panel(axes[1][0], "dirty_log_perf_test: GET and CLEAR, avg per iteration", [
        ("perf_get_us", anyr, lambda t: "GET " + perf_label(t), size),
        ("perf_clear_us", anyr, lambda t: "CLEAR " + perf_label(t), size)])
    panel(axes[1][1], "dirty_log_perf_test: dirty memory time (write faults,\n"
          "mark_page_dirty) and enabling dirty logging", [
        ("perf_dirty_us", anyr, lambda t: "dirty " + perf_label(t), size),
        ("perf_enable_us", anyr, lambda t: "enable " + perf_label(t), size)])

    # Paired ratios (median of each round's Rust/C) against size.
    ax = axes[1][2]
    summ = summarize(rows)
    i = 0
    for metric, lab in (("get_us", "GET"), ("get_manual_us", "GET manual"),
                        ("clear_us", "CLEAR written"), ("clear_empty_us", "CLEAR unmapped"),
                        ("perf_get_us", "perf GET"), ("perf_clear_us", "perf CLEAR")):
        groups = {}
        for s in summ:
            if s["metric"] == metric:
                groups.setdefault(s["tags"], []).append((size_mib(s["size"]), s["ratio_paired"]))
        for tags, pts in sorted(groups.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    color=colors[i % len(colors)], label=f"{lab} {tags}")
            i += 1
    ax.axhspan(0.95, 1.05, color="grey", alpha=0.2, label="within 5 %")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(mib)
    ax.set_title("Rust/C time ratio, median of the per-round ratios\n(above 1: Rust slower)",
                 fontsize=11)
    ax.set_xlabel("guest memory of the slot / test")
    ax.set_ylabel("Rust / C")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)

    fig.suptitle("kvm_dirty.ko (Rust) vs KVM's C paths, same VM boot, nested QEMU TCG "
                 "(absolute times are TCG times: compare C with Rust)", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=90)

    # Write-protect-all (classes wpall and logon), beside the figures of
    # Xiao Guangrong's "fast write protection" (KVM Forum 2017: 3 GiB,
    # 12 vCPUs, hardware).
    if not any(r["metric"] in ("round_us", "log_on_us") for r in rows):
        return
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    panel(axes[0], "one harvest round: C classic GET vs\nRust GET without protect + WP-all", [
        ("round_us", anyr, lambda t: f"{t.replace('dirty=', '')}% dirty", size)])
    panel(axes[1], "turning dirty logging on, slot fully mapped (2M):\n"
          "C split + write-protect vs Rust WP-all", [
        ("log_on_us", anyr, lambda t: "log on" + (" (no writes between)" if t else ""), size)])
    panel(axes[2], "the guest's writes after a round / after logging on", [
        ("write_us", anyr, lambda t: ("after a round and a read pass, " if "after=read" in t
                                      else "after a round, ") + f"{pct(t)}% dirty", size),
        ("read_us", anyr, lambda t: "reads of every page, after a 1% round", size),
        ("log_on_write_us", anyr, lambda t: "every page, after logging on", size)])
    for ax, classic, wp, what in ((axes[0], 64289.121, 137.654, "GET"),
                                  (axes[1], 156000, 6000, "first dirty log")):
        ax.plot([3072], [classic], marker="*", ms=12, ls="", color="black",
                label=f"KVM Forum 2017 {what}, classic (hardware, 3G)")
        ax.plot([3072], [wp], marker="*", ms=12, ls="", color="grey",
                label=f"KVM Forum 2017 {what}, fast write protection")
        ax.legend(fontsize=8)
    where = "arm64 stage 2 (4K guest pages, 2M blocks)" if arm64 else "x86 TDP MMU"
    fig.suptitle(f"write-protect-all, {where}, same VM boot, nested QEMU TCG",
                 fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(os.path.join(os.path.dirname(path), "wp_all.png"), dpi=90)


def shared(rows):
    """The shared class (selftests/dirty_bench -m shared): per slot size and
    dirty share, each path's sync (shared_sync_us; shared: the VMM's scan of
    the mapped bitmap and a write-protect-all, rust: GET without
    write-protect and a write-protect-all, c: classic GET), medians over the
    rounds, and the paired ratios shared/rust and shared/c: per round the
    values of one process whose syncs alternate, their median and range.
    The same for the part that takes the bits (shared_harvest_us: the scan
    against the Rust path's GET).  And the scan's GB/s (shared_gbps
    src=map) against the same scan of anonymous memory (src=anon) and a
    plain read of it (src=read), with the paired fractions map/read and
    map/anon."""
    by = {}
    for r in rows:
        tags = " ".join(f for f in r["tags"].split() if not f.startswith("src="))
        src = re.search(r"src=(\w+)", r["tags"])
        path = src.group(1) if src else r["path"]
        by.setdefault((r["size"], tags), {}).setdefault(r["metric"], {}) \
            .setdefault(path, {})[r["round"]] = r["value"]

    def med(vals):
        return statistics.median(vals.values()) if vals else float("nan")

    def paired(a, b):
        p = [a[k] / b[k] for k in a if k in b and b[k]]
        if not p:
            return float("nan"), float("nan"), float("nan")
        return statistics.median(p), min(p), max(p)

    out = []
    for (size, tags), m in by.items():
        clock = by.get((size, ""), {}).get("shared_clock_us", {})
        sync, harvest, rate = (m.get(k, {}) for k in
                               ("shared_sync_us", "shared_harvest_us", "shared_gbps"))
        if not sync:
            continue
        row = {"size": size, "dirty": pct(tags),
               "rounds": max(len(v) for v in sync.values())}
        for p in ("shared", "rust", "c"):
            row[f"{p}_us"] = med(sync.get(p, {}))
        row["scan_us"] = med(harvest.get("shared", {}))
        row["get_us"] = med(harvest.get("rust", {}))
        for key, a, b in (("vs_rust", sync.get("shared", {}), sync.get("rust", {})),
                          ("vs_c", sync.get("shared", {}), sync.get("c", {})),
                          ("scan_vs_get", harvest.get("shared", {}), harvest.get("rust", {})),
                          ("map_vs_read", rate.get("map", {}), rate.get("read", {})),
                          ("map_vs_anon", rate.get("map", {}), rate.get("anon", {}))):
            row[key], row[key + "_min"], row[key + "_max"] = paired(a, b)
        for src in ("map", "anon", "read"):
            row[f"{src}_gbps"] = med(rate.get(src, {}))
        # Two clock reads (the control): what every timed interval includes.
        row["clock_us"] = statistics.median(
            [v for p in clock.values() for v in p.values()]) if clock else float("nan")
        out.append(row)
    return sorted(out, key=lambda r: (size_mib(r["size"]), int(r["dirty"])
                                      if r["dirty"].isdigit() else 0))


SHARED_FIELDS = ["size", "dirty", "shared_us", "rust_us", "c_us", "vs_rust", "vs_rust_min",
                 "vs_rust_max", "vs_c", "vs_c_min", "vs_c_max", "scan_us", "get_us",
                 "scan_vs_get", "scan_vs_get_min", "scan_vs_get_max", "map_gbps", "anon_gbps",
                 "read_gbps", "map_vs_read", "map_vs_read_min", "map_vs_read_max",
                 "map_vs_anon", "map_vs_anon_min", "map_vs_anon_max", "clock_us", "rounds"]


def _num(v, digits=3):
    if v != v:
        return "-"
    return f"{v:,.0f}" if v >= 1000 else f"{v:.{digits}g}"


def _ratio(s, key):
    if s[key] != s[key]:
        return "-"
    return f"{fmt_ratio(s[key])} ({fmt_ratio(s[key + '_min'])}-{fmt_ratio(s[key + '_max'])})"


def write_shared_md(path, sh):
    with open(path, "a") as f:
        f.write("\n## The shared bitmap against GET\n\n"
                "One dirty sync of the slot (selftests/dirty_bench -m shared), three VMs "
                "alternating in one process: **shared**, the VMM's exchange scan of the "
                "mapped bitmap then KVM_WRITE_PROTECT_ALL_MEM; **b**, the Rust path's GET "
                "without write-protect then KVM_WRITE_PROTECT_ALL_MEM; **c**, KVM's classic "
                "GET.  Each ends with the same bitmap in user space.  Medians over the "
                "rounds, us; ratios are time ratios, below 1 the shared bitmap faster, "
                "paired per round (median, and range over the rounds).  Scan and GET: the "
                "part of shared and b that takes the bits.\n\n"
                "| size | dirty % | shared, us | b, us | c, us | shared/b | shared/c | "
                "scan, us | GET (b), us | scan/GET | n |\n"
                "|---|---:|---:|---:|---:|---|---|---:|---:|---|---:|\n")
        for s in sh:
            f.write(f"| {s['size']} | {s['dirty']} | {_num(s['shared_us'])} | "
                    f"{_num(s['rust_us'])} | {_num(s['c_us'])} | {_ratio(s, 'vs_rust')} | "
                    f"{_ratio(s, 'vs_c')} | {_num(s['scan_us'])} | {_num(s['get_us'])} | "
                    f"{_ratio(s, 'scan_vs_get')} | {s['rounds']} |\n")
        f.write("\nThe scan's rate, GB/s of bitmap (medians over the rounds): the mapping "
                "(map), the same scan of anonymous memory holding the same words (anon), a "
                "plain read of that memory (read, the most any scan could do here); map/read "
                "and map/anon paired per round.  Clock: two clock reads back to back, us, "
                "which every timed scan includes.\n\n"
                "| size | dirty % | map | anon | read | map/read | map/anon | clock, us | n |\n"
                "|---|---:|---:|---:|---:|---|---|---:|---:|\n")
        for s in sh:
            if s["map_gbps"] != s["map_gbps"]:
                continue
            f.write(f"| {s['size']} | {s['dirty']} | {_num(s['map_gbps'])} | "
                    f"{_num(s['anon_gbps'])} | {_num(s['read_gbps'])} | "
                    f"{_ratio(s, 'map_vs_read')} | {_ratio(s, 'map_vs_anon')} | "
                    f"{_num(s['clock_us'])} | {s['rounds']} |\n")


def shared_summary_rows(sh):
    """results.rst's rows for the shared class: per dirty share, the range
    over the sizes of the paired shared/b and shared/c ratios."""
    rows = []
    for key, against in (("vs_rust", "Rust GET + WP-all"), ("vs_c", "classic GET")):
        for dirty in ("0", "1", "100"):
            cases = [s for s in sh if s["dirty"] == dirty and s[key] == s[key]]
            if not cases:
                continue
            names = []
            for c in cases:
                if c["size"] not in names:
                    names.append(c["size"])
            lo, hi = min(c[key] for c in cases), max(c[key] for c in cases)
            ratio = f"{fmt_ratio(lo)}" if lo == hi else f"{fmt_ratio(lo)}-{fmt_ratio(hi)}"
            rows.append((f"shared bitmap sync / {against}, {dirty} % dirty",
                         sizes_label(names), ratio))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--console", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--wall", type=int, default=0)
    ap.add_argument("--commit", default="", help="the commit measured")
    ap.add_argument("--flavour", default="", help="the kernel flavour (KD_KERNEL)")
    a = ap.parse_args()
    rows, info = parse(a.console)
    if not rows:
        print(f"report: no RESULT lines in {a.console}", file=sys.stderr)
        return 1
    os.makedirs(a.out, exist_ok=True)
    write_csv(os.path.join(a.out, "raw.csv"), rows,
              ["metric", "size", "tags", "path", "round", "value", "n", "min", "max"])
    mig = migration([r for r in rows if r["metric"].startswith("mig_")])
    # The shared class has three paths, not C and Rust: tabled apart.
    sh = shared([r for r in rows if r["metric"].startswith("shared_")])
    rows = [r for r in rows if not r["metric"].startswith(("mig_", "shared_"))]
    if mig:
        write_csv(os.path.join(a.out, "migration.csv"), mig,
                  ["mode", "path", "guest"] + [m for m, _ in MIG_COLS] +
                  ["sync_us_per_sync", "rate_kept", "rounds"])
    summary = summarize(rows)
    write_csv(os.path.join(a.out, "results.csv"), summary,
              ["metric", "tags", "size", "c_median", "rust_median", "ratio", "ratio_paired", "ratio_best", "ratio_min",
               "ratio_max", "c_spread_pct", "rust_spread_pct", "rounds"])
    rounds = max((r["round"] for r in rows), default=0)
    rounds = max([rounds] + [s["rounds"] for s in sh])
    write_md(os.path.join(a.out, "results.md"), summary, info, a.wall, rounds, rust_only(rows))
    if mig:
        write_migration_md(os.path.join(a.out, "results.md"), mig)
    if sh:
        write_csv(os.path.join(a.out, "shared.csv"), sh, SHARED_FIELDS)
        write_shared_md(os.path.join(a.out, "results.md"), sh)
    write_rst(os.path.join(a.out, "results.rst"), summary, mig, info, a.wall,
              a.commit, a.flavour, sh)
    if rows:
        plot(os.path.join(a.out, "latency_vs_size.png"), rows,
             arm64=any("arch=aarch64" in i for i in info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
