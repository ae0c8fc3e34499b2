"""Runs on the executor: the same probe runs in this process (`--jobs 1`) and on a Dask LocalCluster (`--jobs 2`).

Each mode runs the real `fruit-synth sweep` command on the grocery profile (copy_paste, four dataset sizes x two seeds:
8 probe runs) in a fresh work folder of its own, so each makes its datasets and features from nothing. It prints the wall
time and the CPU time (user + system, of the command and every process it started) of each mode, the ratio of the wall
times, and the bound the cores set: on C cores no schedule finishes before (CPU time of the serial run) / C, so the
ratio cannot exceed (serial wall) / (serial CPU / C). The result rows of both modes must agree (timing aside).

    .venv/bin/python benchmarks/runs.py [--values 25,50,100,200] [--seeds 2] [--jobs 2] [--input-size 128]
"""
import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "fruit-synth"


def sweep(jobs: int, work: Path, values: str, seeds: int, size: int) -> tuple[float, float, list[dict]]:
    "Wall seconds, CPU seconds (this child and its descendants) and rows of one sweep."
    out = work / "sweep"
    command = [str(CLI), "sweep", "--profile", "grocery", "-p", f"work_dir={work}", "-p", f"input_size={size}",
               "--vary", f"n_per_class={values}", "--variants", "copy_paste", "--seeds", str(seeds), "--train-mode", "probe",
               "--jobs", str(jobs), "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0: sys.exit(f"runs benchmark: --jobs {jobs} failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(out / "sweep.csv", newline="") as handle:
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]
    return wall, cpu, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--values", default="25,50,100,200", help="n_per_class values (default: 25,50,100,200)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per value (default: 2)")
    parser.add_argument("--jobs", type=int, default=2, help="workers of the local cluster (default: 2)")
    parser.add_argument("--input-size", type=int, default=128, help="the probe's input edge (default: 128; the profile's: 288)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    runs = len(args.values.split(",")) * args.seeds
    base = Path(tempfile.mkdtemp(prefix="fruit-synth-runs-"))
    try:
        serial = sweep(1, base / "serial", args.values, args.seeds, args.input_size)
        spread = sweep(args.jobs, base / "spread", args.values, args.seeds, args.input_size)
    finally: shutil.rmtree(base, ignore_errors=True)
    bound = serial[0] / (serial[1] / min(cores, args.jobs))
    print(f"{runs} probe runs (grocery, copy_paste, n_per_class {args.values}, {args.seeds} seeds, input {args.input_size} px), "
          f"{cores} cores")
    print(f"{'mode':<22} {'wall s':>8} {'CPU s':>8}")
    print(f"{'--jobs 1 (in process)':<22} {serial[0]:>8.1f} {serial[1]:>8.1f}")
    print(f"{f'--jobs {args.jobs} (LocalCluster)':<22} {spread[0]:>8.1f} {spread[1]:>8.1f}")
    print(f"ratio (serial / cluster wall): {serial[0] / spread[0]:.2f}x; bound from the cores: {bound:.2f}x "
          f"(serial wall / (serial CPU / {min(cores, args.jobs)}))")
    print(f"rows identical: {serial[2] == spread[2]}")
    return 0 if serial[2] == spread[2] else 1


if __name__ == "__main__":
    sys.exit(main())
