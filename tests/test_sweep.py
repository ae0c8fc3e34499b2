"`fruit-synth sweep`: resume after SIGKILL, datasets as supersets, the probe's feature cache, errors in --vary, new image code."
import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import CLI, ROOT, run_cli
from fruit_synth.generate.datasets import load_dataset
from fruit_synth.generate.variants import generate_variant
from fruit_synth.learn.probe import FeatureCache
from fruit_synth.core.settings import load_settings
from fruit_synth.study.sweep import SweepSpec, parse_vary, point_dataset, run_sweep

TWO_CLASSES = ["-p", "classes=kiwi,banana", "-p", "plurals=kiwis,bananas"]


def sweep_args(work: Path, out: Path) -> list[str]:
    return ["sweep", "--profile", "grocery", "-p", f"work_dir={work}", *TWO_CLASSES, "-p", "test_per_class=8",
            "-p", "input_size=64", "--vary", "n_per_class=4,8", "--variants", "copy_paste_piles", "few_shot", "--seeds", "2",
            "--train-mode", "probe", "--jobs", "1", "--out", str(out)]


def table(folder: Path) -> list[dict]:
    "sweep.csv without its timing column."
    with open(folder / "sweep.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def test_sweep_resumes_after_sigkill(tmp_path, data):
    work, killed, whole = tmp_path / "work", tmp_path / "killed", tmp_path / "whole"
    process = subprocess.Popen([str(CLI), *sweep_args(work, killed)], cwd=ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 900
    while not list((killed / "points").glob("*.json")) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the sweep ended before it could be killed"
    assert not (killed / "sweep.csv").exists()
    first_points = len(list((killed / "points").glob("*.json")))
    assert 1 <= first_points < 8
    resumed = run_cli(*sweep_args(work, killed))
    assert resumed.returncode == 0, resumed.stderr
    assert "8/8 points done" in resumed.stderr
    overrides = [f"work_dir={work}", "classes=kiwi,banana", "plurals=kiwis,bananas", "test_per_class=8", "input_size=64"]
    spec = SweepSpec(parse_vary(["n_per_class=4,8"]), ["copy_paste_piles", "few_shot"], seeds=2)
    run_sweep(load_settings("grocery", overrides), spec, whole, "probe", jobs=1, progress=False)  # uninterrupted
    rows = table(killed)
    assert len(rows) == 8 and {row["status"] for row in rows} == {"ok"}
    assert rows == table(whole)
    assert (killed / "curve_n_per_class.png").is_file()


def test_larger_sets_are_supersets(tmp_path, data):
    settings = load_settings("grocery", {"work_dir": tmp_path, "classes": "kiwi, banana", "plurals": "kiwis, bananas",
                                         "n_per_class": 25})
    alone = load_dataset(generate_variant(settings, "copy_paste", tmp_path / "alone", jobs=2, progress=False))
    point = load_dataset(point_dataset(settings, "copy_paste", tmp_path / "sweep", largest=50, jobs=2))
    full = load_dataset(next((tmp_path / "sweep" / "full").glob("copy_paste-*")) / "copy_paste")
    assert {name: count for name, count in full.info["counts"].items()} == {"kiwi": 50, "banana": 50}
    assert len(point.records) == len(alone.records) == 50
    for mine, theirs in zip(point.records, alone.records):
        assert (mine["class"], mine["index"]) == (theirs["class"], theirs["index"])
        assert (point.folder / mine["file"]).read_bytes() == (alone.folder / theirs["file"]).read_bytes()


def test_probe_cache_follows_file_content(tmp_path):
    image = tmp_path / "photo.png"
    Image.new("RGB", (50, 40), (200, 40, 40)).save(image)
    cache = FeatureCache(tmp_path / "features", "efficientnet_lite0", 48, pretrained=False, device="cpu")
    before = cache.features([image])
    assert (cache.computed, cache.loaded) == (1, 0)
    reread = FeatureCache(tmp_path / "features", "efficientnet_lite0", 48, pretrained=False, device="cpu")
    assert np.array_equal(reread.features([image]), before) and (reread.computed, reread.loaded) == (1 - 1, 1)
    Image.new("RGB", (50, 40), (40, 40, 200)).save(image)
    after = FeatureCache(tmp_path / "features", "efficientnet_lite0", 48, pretrained=False, device="cpu")
    changed = after.features([image])
    assert (after.computed, after.loaded) == (1, 0)
    assert not np.allclose(changed, before)
    other_size = FeatureCache(tmp_path / "features", "efficientnet_lite0", 64, pretrained=False, device="cpu")
    assert other_size.key != after.key


def test_bad_vary_is_one_line_naming_it(tmp_path):
    for vary, named in [("n_per_clas=25,50", "n_per_clas"), ("n_per_class=25,fifty", "fifty"), ("n_per_class", "n_per_class")]:
        result = run_cli("sweep", "--profile", "grocery", "-p", f"work_dir={tmp_path}", "--vary", vary)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0] and "--vary" in lines[0], result.stderr
    assert not (tmp_path / "grocery").exists()


def test_new_image_code_is_never_reused_as_old(monkeypatch):
    "A generator's version bump changes the digests by which sweeps and ablations reuse datasets and results."
    from fruit_synth.study import sweep
    from fruit_synth.study.ablations import generation_digest
    from fruit_synth.generate.variants import CopyPasteGenerator
    settings = load_settings("grocery")
    point = sweep.Point("copy_paste_bins", {"n_per_class": 4}, 0)
    before = (generation_digest(settings), sweep._image_digest(settings), sweep._point_digest(settings, point, "probe", {}))
    monkeypatch.setattr(CopyPasteGenerator, "version", "copy-paste-next")
    after = (generation_digest(settings), sweep._image_digest(settings), sweep._point_digest(settings, point, "probe", {}))
    assert all(old != new for old, new in zip(before, after)), (before, after)


def test_each_seed_of_a_point_has_its_own_images(tmp_path, data):
    "seeds_vary = dataset: a point's seed 1 reads a set of its own, the same images generate_variant makes with images seed 1."
    settings = load_settings("grocery", {"work_dir": tmp_path, "classes": "kiwi, banana", "plurals": "kiwis, bananas",
                                         "n_per_class": 4})
    first = load_dataset(point_dataset(settings, "copy_paste_bins", tmp_path / "sweep", largest=4, jobs=1))
    second = load_dataset(point_dataset(settings, "copy_paste_bins", tmp_path / "sweep", largest=4, jobs=1, images_seed=1))
    alone = load_dataset(generate_variant(settings, "copy_paste_bins", tmp_path / "alone", jobs=1, progress=False, images_seed=1))
    assert first.folder != second.folder and (second.info["seed"], first.info["seed"]) == (1, 0)
    assert (first.folder / first.records[0]["file"]).read_bytes() != (second.folder / second.records[0]["file"]).read_bytes()
    for mine, theirs in zip(second.records, alone.records):
        assert (second.folder / mine["file"]).read_bytes() == (alone.folder / theirs["file"]).read_bytes()
    few = point_dataset(settings, "few_shot", tmp_path / "sweep", largest=4, jobs=1, images_seed=1)  # its images are its sources
    assert few == point_dataset(settings, "few_shot", tmp_path / "sweep", largest=4, jobs=1)
