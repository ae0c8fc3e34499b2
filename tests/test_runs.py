"""The executor (study.runs): serial against a local Dask cluster, a worker killed mid-run, workers that see other folders,
worker counts that cannot run, and the allocator's thresholds reaching the processes the command starts."""
import csv
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from conftest import CLI, ROOT, run_cli
from fruit_synth.study.runs import ExecutorError, compare_views

# every run on one thread, here and in the workers: floating-point sums then add up in the same order
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TWO_CLASSES = ["-p", "classes=kiwi,banana", "-p", "plurals=kiwis,bananas"]


def sweep(work: Path, out: Path, jobs: int) -> subprocess.CompletedProcess:
    return run_cli("sweep", "--profile", "grocery", "-p", f"work_dir={work}", *TWO_CLASSES, "-p", "test_per_class=8",
                   "-p", "input_size=64", "--vary", "n_per_class=4,8", "--variants", "copy_paste", "few_shot", "--seeds", "2",
                   "--train-mode", "probe", "--jobs", str(jobs), "--out", out, env=ONE_THREAD)


def rows(folder: Path) -> list[dict]:
    "sweep.csv without its timing column."
    with open(folder / "sweep.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def test_a_sweep_on_two_workers_gives_the_rows_of_a_serial_one(tmp_path, data):
    serial = sweep(tmp_path / "work-serial", tmp_path / "serial", 1)
    assert serial.returncode == 0, serial.stderr[-3000:]
    spread = sweep(tmp_path / "work-spread", tmp_path / "spread", 2)
    assert spread.returncode == 0, spread.stderr[-3000:]
    assert "sweep: 2 workers on a local cluster" in spread.stderr
    assert "in cpu-0" in spread.stderr and "in cpu-1" in spread.stderr  # both workers ran tasks
    assert len(rows(tmp_path / "serial")) == 8 and {row["status"] for row in rows(tmp_path / "serial")} == {"ok"}
    assert rows(tmp_path / "spread") == rows(tmp_path / "serial")
    def made(work: Path) -> list[str]:  # the dataset folders, without the digest (it covers work_dir): each made once
        return sorted(re.sub(r"-[0-9a-f]{16}", "", p.name) for p in (work / "grocery" / "sweeps" / "datasets" / "full").iterdir())
    assert made(tmp_path / "work-spread") == made(tmp_path / "work-serial") == ["copy_paste", "copy_paste-images1", "few_shot"]


REPORT_VARIANTS = ["few_shot", "copy_paste"]  # two runs on two workers: the killed one is run again


def report_args(base: Path, demo_world: Path, jobs: int) -> list[str]:
    return ["report", "--out", str(base / "report"), "--variants", *REPORT_VARIANTS, "--jobs", str(jobs), "-p",
            f"work_dir={base / 'work'}", "-p", f"demo_dir={demo_world}", "-p", "n_per_class=12", "-p", "test_per_class=12",
            "-p", "epochs_grid=1", "-p", "threads=1"]


def results(report: Path) -> dict:
    "Per variant: what its metrics.json says of the test (timings aside)."
    found = {}
    for variant in REPORT_VARIANTS:
        metrics = json.loads((report / "runs" / variant / "metrics.json").read_text())
        found[variant] = {"summary": metrics["summary"], "selected": [run["test"] for run in metrics["selected"]]}
    return found


def worker_running_a_notebook(root: psutil.Process) -> psutil.Process | None:
    "The Dask worker whose child is a notebook kernel, below `root`."
    for child in root.children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(child.cmdline()): return child.parent()
        except psutil.NoSuchProcess: continue
    return None


def test_a_report_with_a_worker_killed_mid_run_equals_a_serial_one(tmp_path, demo_world):
    serial = run_cli(*report_args(tmp_path / "serial", demo_world, 1), env=ONE_THREAD)
    assert serial.returncode == 0, serial.stderr[-3000:]
    spread = tmp_path / "spread"
    log = open(tmp_path / "spread.log", "w")
    process = subprocess.Popen([str(CLI), *report_args(spread, demo_world, 2)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, **ONE_THREAD}, start_new_session=True)
    victim, deadline = None, time.time() + 600
    while victim is None and process.poll() is None and time.time() < deadline:
        victim = worker_running_a_notebook(psutil.Process(process.pid))
        time.sleep(0.2)
    assert victim is not None, "no worker ran a notebook: " + (tmp_path / "spread.log").read_text()[-2000:]
    time.sleep(2)  # into the run
    victim.send_signal(signal.SIGKILL)
    assert process.wait(timeout=900) == 0, (tmp_path / "spread.log").read_text()[-3000:]
    text = (tmp_path / "spread.log").read_text()
    assert results(spread / "report") == results(tmp_path / "serial" / "report")
    assert sorted(p.name for p in (spread / "report" / "runs").iterdir()) == sorted(REPORT_VARIANTS)  # each run folder once
    assert not list(spread.rglob("*.stage-*")) and (spread / "report" / "index.html").is_file()
    print(text[-4000:])  # the fault test's output, for the record (pytest -s)


def test_workers_that_see_other_folders_are_refused_before_any_run():
    mine = {"real_dir": "a1b2", "out": "token-1"}
    compare_views(mine, {"tcp://w1": dict(mine)}, {"real_dir": Path("/data/photos")}, {"out": Path("/scratch/t")})
    with pytest.raises(ExecutorError, match="real_dir folder '/data/photos' is not the same on Dask worker tcp://w2"):
        compare_views(mine, {"tcp://w1": dict(mine), "tcp://w2": {**mine, "real_dir": "ffff"}}, {"real_dir": Path("/data/photos")},
                      {"out": Path("/scratch/t")})
    with pytest.raises(ExecutorError, match=r"out folder '/scratch/t' .*\(missing there\)"):
        compare_views(mine, {"tcp://w1": {**mine, "out": "missing"}}, {"real_dir": Path("/data/photos")}, {"out": Path("/scratch/t")})


@pytest.mark.parametrize("jobs", ["0", "-1", "1000"])
def test_worker_counts_that_cannot_run_are_one_line(tmp_path, jobs):
    result = run_cli("sweep", "--jobs", jobs, "--vary", "n_per_class=4,8", "-p", f"work_dir={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") <= 1 and "--jobs: expected a number of workers from 1 to" in result.stderr
    assert not (tmp_path / "demo").exists()


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    result = run_cli("report", "--scheduler", "tcp://127.0.0.1:9", "-p", f"work_dir={tmp_path}", "--out", tmp_path / "r",
                     timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "--scheduler tcp://127.0.0.1:9: no Dask scheduler answered" in result.stderr


def test_processes_the_command_starts_get_the_allocator_thresholds(tmp_path):
    # the command, the executor's workers and the kernels call tune_allocator first; a child started after it inherits the values
    code = ("import os, subprocess, sys; from fruit_synth.core.processes import tune_allocator; tune_allocator(); "
            "print(subprocess.run([sys.executable, '-c', 'import os; print(os.environ[\"GLIBC_TUNABLES\"])'], "
            "capture_output=True, text=True).stdout)")
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "FRUIT_SYNTH_DEFAULT_MALLOC")}
    out = subprocess.run([str(Path(CLI).parent / "python"), "-c", code], capture_output=True, text=True, env=env).stdout
    assert "glibc.malloc.mmap_threshold=1073741824" in out and "glibc.malloc.trim_threshold=1073741824" in out


def test_an_ablation_gives_the_same_rows_in_this_process_and_on_two_workers(tmp_path, data):
    import torch

    from fruit_synth.core.settings import load_settings
    from fruit_synth.study.runs import Executor
    from fruit_synth.study.ablations import ablation_runs
    overrides = {"classes": "kiwi, banana", "plurals": "kiwis, bananas", "test_per_class": 5, "n_per_class": 6,
                 "input_size": 64, "train_mode": "probe"}
    configurations = {"six per class": {}, "eight per class": {"n_per_class": 8}}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a worker: the same sums in the same order
    try:
        here = ablation_runs(load_settings("grocery", {**overrides, "work_dir": tmp_path / "here"}), configurations,
                             "copy_paste", "tiny", seeds=(0, 1), progress=False)
    finally: torch.set_num_threads(threads)
    with Executor(jobs=2, gpus=0, progress=False) as executor:
        spread = ablation_runs(load_settings("grocery", {**overrides, "work_dir": tmp_path / "spread"}), configurations,
                               "copy_paste", "tiny", seeds=(0, 1), progress=False, executor=executor)
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
    assert len(here) == 4 and strip(spread) == strip(here)
    again = ablation_runs(load_settings("grocery", {**overrides, "work_dir": tmp_path / "here"}), configurations,
                          "copy_paste", "tiny", seeds=(0, 1), progress=False)
    assert again == here  # finished runs are read back, not run again
    assert len(list((tmp_path / "spread" / "grocery" / "ablation" / "datasets").iterdir())) == 4  # one dataset per configuration and seed


def test_a_sweep_into_a_folder_another_process_writes_stops_at_once(tmp_path):
    out = tmp_path / "sweep"
    code = ("import sys, time\nfrom fruit_synth.study.runs import hold_folder\n"
            f"with hold_folder({str(out)!r}, 'sweep'):\n    print('held', flush=True)\n    time.sleep(120)")
    holder = subprocess.Popen([str(Path(CLI).parent / "python"), "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run_cli("sweep", "--vary", "n_per_class=4,8", "-p", f"work_dir={tmp_path / 'work'}", "--out", out)
    finally: holder.kill()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"sweep folder '{out}' is being written by process {holder.pid}" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [".fruit-synth.lock"]  # nothing of the second sweep was written
