#!/usr/bin/env python3
"""Interleaved A/B timing of two hwyconv_bench binaries.

Usage:
  python3 scripts/ab.py BENCH_A BENCH_B [--rounds 3] [--csv out.csv] -- [hwyconv_bench arguments]

Runs A and B alternately (A B, then B A, ...) for the given rounds on the same arguments (hwyconv only:
--libs hwyconv is added), reads each run's CSV and prints, for every (layer, pass, mb, threads), the
median over rounds of each binary's median time and their ratio time_A / time_B (above 1: B is faster),
then the geometric mean of the ratios per (pass, mb, threads). Machines are shared and noisy: decide on
the medians of several rounds, never on one run.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path


def run(bench: str, args: list[str], csv_path: Path) -> dict[tuple, float]:
    cmd = [bench, *args, "--libs", "hwyconv", "--csv", str(csv_path), "--json", "/dev/null", "--svg", "/dev/null"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    times = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            if row["library"] != "hwyconv" or not row["median_ms"]:
                continue
            times[(row["layer"], row["pass"], int(row["mb"]), int(row["threads"]))] = float(row["median_ms"])
    return times


def main() -> int:
    argv = sys.argv[1:]
    rest = []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description="interleaved A/B of two hwyconv_bench binaries")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--csv", help="write the per-layer medians here")
    o = p.parse_args(argv)
    samples: dict[str, dict[tuple, list[float]]] = {"a": defaultdict(list), "b": defaultdict(list)}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(o.rounds):
            order = ["a", "b"] if r % 2 == 0 else ["b", "a"]
            for which in order:
                times = run(getattr(o, which), rest, Path(tmp) / f"{which}{r}.csv")
                for k, v in times.items():
                    samples[which][k].append(v)
            print(f"round {r + 1}/{o.rounds} done", file=sys.stderr)
    keys = [k for k in samples["a"] if k in samples["b"]]
    groups: dict[tuple, list[float]] = defaultdict(list)
    rows = []
    print(f"{'layer':<24} {'pass':<6} {'mb':>3} {'thr':>3} {'A ms':>9} {'B ms':>9} {'A/B':>6}")
    for k in keys:
        a = statistics.median(samples["a"][k])
        b = statistics.median(samples["b"][k])
        ratio = a / b
        groups[k[1:]].append(ratio)
        rows.append((*k, a, b, ratio))
        print(f"{k[0][-24:]:<24} {k[1]:<6} {k[2]:>3} {k[3]:>3} {a:>9.3f} {b:>9.3f} {ratio:>6.3f}")
    print("\ngeomean of A/B per (pass, mb, threads):")
    for g, rs in sorted(groups.items()):
        gm = math.exp(sum(math.log(x) for x in rs) / len(rs))
        print(f"  {g[0]:<6} mb {g[1]:>3} threads {g[2]}: {gm:.3f} over {len(rs)} layers "
              f"(min {min(rs):.3f}, max {max(rs):.3f})")
    if o.csv:
        with open(o.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["layer", "pass", "mb", "threads", "a_ms", "b_ms", "a_over_b"])
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
