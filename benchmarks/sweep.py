"""Sweep benchmark: a 5-point n_per_class sweep x 2 variants x 2 seeds in probe mode on the grocery profile, cold and warm.

Cold: a fresh work folder (no datasets, no cut-out library, no cached features). Warm: the same work folder and a new
sweep folder, so every dataset and feature is reused and only the probes are fitted again. Each phase runs the real
`fruit-synth sweep` command; it prints wall time and the share spent generating images, computing features and
fitting, from the timings the sweep records in sweep.json. Goals (issue 13): cold <= 5 min, warm <= 30 s on the
2-core machine, at a 128 px input (INPUT_SIZE). The machine may be shared: run it under `nice -n 19` and read the numbers as upper bounds.

    nice -n 19 .venv/bin/python benchmarks/sweep.py [--work DIR] [--values 25,50,100,200,400] [--seeds 2]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "fruit-synth"
GOALS = {"cold": 300.0, "warm": 30.0}


# The sweep machinery at the generation size (128 px): the grocery profile's own 288 px input costs about 5x the
# feature time (a cold run of this grid then takes well over 5 minutes on 2 cores).
INPUT_SIZE = 128


def run_phase(name: str, work: Path, values: str, seeds: int, variants: list[str]) -> dict:
    "Run one sweep into <work>/<name>; return its wall time and recorded timings."
    out = work / f"sweep-{name}"
    command = [str(CLI), "sweep", "--profile", "grocery", "-p", f"work_dir={work}", "-p", f"input_size={INPUT_SIZE}",
               "--vary", f"n_per_class={values}",
               "--variants", *variants, "--seeds", str(seeds), "--train-mode", "probe", "--out", str(out)]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{name} sweep failed ({result.returncode}):\n{result.stderr[-3000:]}")
    timings = json.loads((out / "sweep.json").read_text())["timings"]
    return {"phase": name, "wall": wall, "out": out, **timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="work folder (default: a new temporary folder, removed after)")
    parser.add_argument("--values", default="25,50,100,200,400", help="n_per_class values")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=["copy_paste_piles", "few_shot"])
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    if args.work and (work / "grocery").exists(): sys.exit(f"{work} already holds grocery stages: give an empty --work for a cold run")
    points = len(args.values.split(",")) * len(args.variants) * args.seeds
    print(f"sweep benchmark: grocery profile, probe mode, n_per_class {args.values} x {' '.join(args.variants)} x "
          f"{args.seeds} seeds = {points} runs; {os.cpu_count()} cores; work folder {work}")
    try:
        phases = [run_phase("cold", work, args.values, args.seeds, args.variants),
                  run_phase("warm", work, args.values, args.seeds, args.variants)]
        print(f"{'phase':<6}{'wall s':>9}{'generation':>12}{'features':>10}{'fitting':>9}{'other':>8}"
              f"{'computed':>10}{'cached':>8}{'goal s':>8}{'wall/goal':>10}")
        for p in phases:
            gen, feat, fit = p.get("generation", 0.0), p.get("features", 0.0), p.get("fitting", 0.0)
            other = max(0.0, p["wall"] - gen - feat - fit)
            share = lambda seconds: f"{100 * seconds / p['wall']:.0f}%"
            print(f"{p['phase']:<6}{p['wall']:>9.1f}{share(gen):>12}{share(feat):>10}{share(fit):>9}{share(other):>8}"
                  f"{p.get('features_computed', 0):>10}{p.get('features_loaded', 0):>8}{GOALS[p['phase']]:>8.0f}"
                  f"{p['wall'] / GOALS[p['phase']]:>10.2f}")
        print("generation includes the cut-out library and linking each point's images; 'other' is start-up (imports), "
              "the test sample and the leakage check, writing results and plots")
        print(f"warm / cold: {phases[1]['wall'] / phases[0]['wall']:.3f}")
        print((phases[0]["out"] / "sweep.csv").read_text())
    finally:
        if not args.work: shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
