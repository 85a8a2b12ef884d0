#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Compares the ratios of two scripts/bench.sh results (their latest.json): for every
# workload and queue depth, vdhost/peer ops/s (ratio_<peer>), vdhost/peer backend CPU per op
# (cpu_ratio_<peer>) and vdhost/raw ops/s (ratio_raw). Prints each ratio in A and in B with
# its spread (min-max over the reps), their difference (the larger over the smaller, minus
# 1) and whether the spreads overlap, then the largest difference.
#
# Usage: scripts/bench-compare.py [--threshold FRACTION] [--only GLOB] A.json B.json
#   --threshold FRACTION  a difference above it fails (default 0.10: ratios within 10%)
#   --only GLOB           compare only the ratios whose name matches (e.g. 'ratio_*virtiofsd',
#                         'cpu_ratio_*'); repeatable
# Exit status: 0 when every ratio agrees within the threshold, 1 when one does not or a
# ratio is in one file only, 2 when a file cannot be read or has no summary.
import argparse
import fnmatch
import json
import sys


def load(path):
    """The run's ratios {(workload, qd, name): (value, [min, max] or None)}, and its load
    average and CPU wait (how busy the machine was)."""
    with open(path) as f:
        doc = json.load(f)
    summary = doc.get("summary")
    if not isinstance(summary, list):
        raise ValueError("no 'summary' list (not a scripts/bench.sh latest.json?)")
    ratios = {}
    for s in summary:
        for k, v in s.items():
            if k.endswith("_spread") or not (k.startswith("ratio_") or k.startswith("cpu_ratio_")):
                continue
            if v is None:
                continue
            sp = s.get(k + "_spread")
            ratios[(s["workload"], int(s["queue_depth"]), k)] = (float(v), sp)
    info = {"load": doc.get("load_average") or {}, "wait": doc.get("cpu_wait_pct") or {}}
    return ratios, info


def difference(a, b):
    """How far apart two positive ratios are: the larger over the smaller, minus 1."""
    lo, hi = min(a, b), max(a, b)
    return float("inf") if lo <= 0 else hi / lo - 1


def fmt_ratio(v, sp):
    if sp:
        return f"{v:.2f} [{sp[0]:.2f}-{sp[1]:.2f}]"
    return f"{v:.2f}"


def main(argv):
    ap = argparse.ArgumentParser(description="Compare the ratios of two bench.sh results.")
    ap.add_argument("a", metavar="A.json")
    ap.add_argument("b", metavar="B.json")
    ap.add_argument("--threshold", type=float, default=0.10,
                    help="largest allowed difference (default 0.10)")
    ap.add_argument("--only", action="append", default=[], metavar="GLOB",
                    help="compare only the ratios whose name matches (repeatable)")
    args = ap.parse_args(argv)
    if args.threshold < 0:
        ap.error("--threshold must not be negative")

    runs = []
    for path in (args.a, args.b):
        try:
            runs.append(load(path))
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"bench-compare: {path}: {e}", file=sys.stderr)
            return 2
    (ra, la), (rb, lb) = runs

    def wanted(name):
        return not args.only or any(fnmatch.fnmatchcase(name, g) for g in args.only)

    keys = [k for k in ra if wanted(k[2])]
    keys += [k for k in rb if k not in ra and wanted(k[2])]
    if not keys:
        print("bench-compare: no ratios to compare", file=sys.stderr)
        return 2
    for tag, path, info in (("A", args.a, la), ("B", args.b, lb)):
        text = ""
        if info["load"]:
            text = f" (load average {info['load'].get('start', '?')} at the start, " \
                   f"{info['load'].get('end', '?')} at the end)"
        print(f"{tag}: {path}{text}")
        waits = [f"{k} {v['median']:.1f}%" for k, v in info["wait"].items() if v]
        if waits:
            print(f"   waiting for a CPU (median): {', '.join(waits)}")
    print(f"difference = larger/smaller - 1; threshold {args.threshold * 100:.0f}%; "
          "overlap = the two min-max spreads overlap")
    print(f"{'workload':<16}{'qd':>4}  {'ratio':<26}{'A [min-max]':>20}{'B [min-max]':>20}"
          f"{'diff':>8}  overlap")
    worst = None
    over = missing = 0
    by_name = {}  # ratio name: [compared, above]
    for k in keys:
        w, qd, name = k
        a, b = ra.get(k), rb.get(k)
        line = f"{w:<16}{qd:>4}  {name:<26}"
        if a is None or b is None:
            missing += 1
            line += f"{fmt_ratio(*a) if a else '-':>20}{fmt_ratio(*b) if b else '-':>20}"
            line += f"{'-':>8}  only in {'A' if a else 'B'}"
            print(line)
            continue
        d = difference(a[0], b[0])
        ov = "-"
        if a[1] and b[1]:
            ov = "yes" if a[1][0] <= b[1][1] and b[1][0] <= a[1][1] else "no"
        flag = ""
        if d > args.threshold:
            over += 1
            flag = "  ABOVE"
        if worst is None or d > worst[0]:
            worst = (d, k)
        counts = by_name.setdefault(name, [0, 0])
        counts[0] += 1
        counts[1] += d > args.threshold
        line += f"{fmt_ratio(*a):>20}{fmt_ratio(*b):>20}{d * 100:>7.1f}%  {ov}{flag}"
        print(line)
    print("above the threshold, by ratio: " +
          ", ".join(f"{n} {c[1]}/{c[0]}" for n, c in by_name.items()))
    compared = len(keys) - missing
    text = f"{compared} ratios compared, {over} differ by more than {args.threshold * 100:.0f}%"
    if missing:
        text += f", {missing} in one file only"
    if worst is not None:
        text += f"; largest difference {worst[0] * 100:.1f}% ({worst[1][0]} QD{worst[1][1]} " \
                f"{worst[1][2]})"
    print(text)
    return 0 if over == 0 and missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
