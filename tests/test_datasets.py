"""Dataset generation through the CLI: determinism across workers, resume after SIGKILL, refusals, bad input."""
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import CLI, run_cli

SMALL = ["--profile", "grocery", "-p", "n_per_class=6", "-p", "image_size=96", "-p", "camera=lighting,noise,blur,jpeg"]  # every effect


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def _files(folder: Path) -> dict[str, bytes]:
    "Every image file of the classes' folders (PNG, or the camera's JPEG), by its path."
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.glob("*/*")) if p.suffix in (".png", ".jpg")}
    assert files, f"no images in {folder}"
    return files


@pytest.fixture
def work(tmp_path: Path) -> list[str]:
    return ["-p", f"work_dir={tmp_path / 'work'}"]


@pytest.mark.parametrize("variant", ["copy_paste", "copy_paste_bins", "copy_paste_mixed"])
def test_same_settings_give_identical_files_whatever_the_number_of_workers(tmp_path, work, data, variant):
    one = run_cli("generate", "copy-paste", "--variant", variant, "--out", tmp_path / "one", "--jobs", "1", *SMALL, *work)
    two = run_cli("generate", "copy-paste", "--variant", variant, "--out", tmp_path / "two", "--jobs", "2", *SMALL, *work)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert "30 images" in one.stdout and "samples.jpg" in one.stdout
    assert _files(tmp_path / "one" / variant) == _files(tmp_path / "two" / variant)
    assert (tmp_path / "one" / variant / "manifest.jsonl").read_bytes() == (tmp_path / "two" / variant / "manifest.jsonl").read_bytes()
    record = _records(tmp_path / "one" / variant)[0]
    assert record["objects"] and record["camera"]["jpeg"]  # every choice recorded, the camera's too
    if variant == "copy_paste": assert all(0 <= v <= 96 for v in record["objects"][0]["box"])
    elif variant == "copy_paste_bins": assert record["placement"] == "bins" and record["coverage"] > 0.5 and len(record["objects"]) >= 10
    else: assert {r["placement"] for r in _records(tmp_path / "one" / variant)} == {"bins", "piles"}  # drawn per image


@pytest.mark.parametrize("variant", ["copy_paste", "copy_paste_bins"])
def test_a_run_killed_halfway_resumes_to_exactly_the_uninterrupted_files(tmp_path, work, data, variant):
    args = ["--variant", variant, "--profile", "grocery", "-p", "n_per_class=40", "-p", "image_size=96", *work]
    reference = run_cli("generate", "copy-paste", "--out", tmp_path / "reference", "--jobs", "2", *args)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "killed"
    process = subprocess.Popen([str(CLI), "generate", "copy-paste", "--out", str(out), "--jobs", "2", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    manifest = out / variant / "manifest.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not manifest.exists() or len(manifest.read_text().splitlines()) < 60):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written = len(manifest.read_text().splitlines())
    assert 0 < written < 200, f"the kill came too late to test a resume ({written} images written)"
    for path in (out / variant).rglob("*.png"):  # whatever is visible under a final name is a whole image
        if not path.name.startswith("."): Image.open(path).load()
    resumed = run_cli("generate", "copy-paste", "--out", out, "--jobs", "2", *args)
    assert resumed.returncode == 0, resumed.stderr
    assert _files(out / variant) == _files(tmp_path / "reference" / variant)
    assert not [p for p in (out / variant).rglob(".*") if p.is_file()]  # no temporary files left


def test_a_folder_with_other_data_is_refused_and_left_alone(tmp_path, work, data):
    out = tmp_path / "out"
    assert run_cli("generate", "copy-paste", "--out", out, *SMALL, *work).returncode == 0
    before = _files(out / "copy_paste")
    other = run_cli("generate", "copy-paste", "--out", out, *SMALL, "-p", "scale_max=0.5", *work)
    assert other.returncode == 2 and "holds a different dataset" in other.stderr and "Traceback" not in other.stderr
    assert _files(out / "copy_paste") == before
    foreign = tmp_path / "foreign"
    (foreign / "copy_paste").mkdir(parents=True)
    (foreign / "copy_paste/holiday.jpg").write_bytes(b"precious")
    refused = run_cli("generate", "copy-paste", "--out", foreign, *SMALL, *work)
    assert refused.returncode == 2 and "not a fruit-synth dataset" in refused.stderr
    assert (foreign / "copy_paste/holiday.jpg").read_bytes() == b"precious"


def test_an_unwritable_output_folder_fails_before_any_work(tmp_path, work, data):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("generate", "copy-paste", "--out", blocker / "datasets", *SMALL, *work)
    assert result.returncode == 2 and "cannot write to output folder" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "work").exists()  # no cut-outs were made: the check came first


def test_fewer_backgrounds_than_images_are_reused_and_reported(tmp_path, work, data):
    few = tmp_path / "backgrounds"
    few.mkdir()
    for path in sorted((data / "backgrounds").glob("*.jpg"))[:3]: shutil.copy(path, few)
    result = run_cli("generate", "copy-paste", "--out", tmp_path / "out", *SMALL, *work, "-p", f"backgrounds_dir={few}",
                     "-p", "min_backgrounds=2")
    assert result.returncode == 0, result.stderr
    assert "note: 3 backgrounds for 6 images per class: 3 per class reuse a background" in result.stdout
    used = {r["background"] for r in _records(tmp_path / "out/copy_paste")}
    assert len(used) == 3


def test_footprint_spacing_is_recorded_and_a_bin_it_cannot_fill_is_a_clear_error(tmp_path, work, data):
    args = ["generate", "copy-paste", "--variant", "copy_paste_bins", *SMALL, *work, "-p", "bins_spacing=footprint"]
    # 160 fruits fill the frame with round fruit at the smallest scale, not with bananas spaced by their footprint
    bad = run_cli(*args, "--out", tmp_path / "bad", "-p", "bins_max_objects=160")
    assert bad.returncode == 2 and "bins_max_objects = 160" in bad.stderr, bad.stderr
    assert re.search(r"with bins_spacing = footprint, the smallest (kiwi|banana) \(0.14, footprint 0\.\d+\) needs \d+ fruits", bad.stderr)
    assert "Traceback" not in bad.stderr and not list((tmp_path / "bad").glob("*/*/*.*"))  # refused before any image
    good = run_cli(*args, "--out", tmp_path / "good")
    assert good.returncode == 0, good.stderr
    footprint = json.loads((tmp_path / "good/copy_paste_bins/dataset.json").read_text())["bins_footprint"]
    assert footprint["banana"] < 0.85 < footprint["orange"] <= 1, footprint
    bananas = [r for r in _records(tmp_path / "good/copy_paste_bins") if r["class"] == "banana"]
    assert {r["spacing"] for r in bananas} == {footprint["banana"]}


def test_a_cutout_folder_with_a_class_missing_is_a_clear_error(tmp_path, work, data):
    masks = tmp_path / "white"
    for name in ["orange", "peach", "kiwi", "tomato"]: shutil.copytree(data / "white" / name, masks / name)
    result = run_cli("generate", "copy-paste", "--out", tmp_path / "out", *SMALL, *work, "-p", f"mask_dir={masks}")
    assert result.returncode == 2 and "mask_dir" in result.stderr and "no class folder matching 'banana'" in result.stderr


def test_hybrid_refuses_clearly_while_a_source_dataset_is_missing(tmp_path, work, data):
    result = run_cli("generate", "hybrid", "--out", tmp_path / "out", *SMALL, *work)
    assert result.returncode == 2
    assert "hybrid needs a complete copy_paste dataset" in result.stderr and "fruit-synth generate copy-paste" in result.stderr


def test_disk_full_is_a_clean_error_and_a_rerun_resumes(tmp_path, monkeypatch, data):
    from fruit_synth.generate import datasets
    from fruit_synth.core.settings import load_settings
    from fruit_synth.generate.variants import generate_variant
    settings = load_settings("grocery", {"work_dir": tmp_path / "work", "n_per_class": 3, "image_size": 64})
    reference = generate_variant(settings, "copy_paste", tmp_path / "reference", jobs=1, progress=False)
    real_save, calls = datasets.save_image, []
    def failing_save(image, path, **options):
        calls.append(path)
        if len(calls) > 4: raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(image, path, **options)
    monkeypatch.setattr(datasets, "save_image", failing_save)
    with pytest.raises(datasets.DatasetError, match="disk full .* run the same command again"):
        generate_variant(settings, "copy_paste", tmp_path / "full", jobs=1, progress=False)
    monkeypatch.setattr(datasets, "save_image", real_save)
    folder = generate_variant(settings, "copy_paste", tmp_path / "full", jobs=1, progress=False)
    assert _files(folder) == _files(reference)


def test_the_demo_profile_builds_its_world_on_a_fresh_clone(tmp_path, demo_world):
    assert not any(demo_world.iterdir())  # nothing there yet: the test_report tests reuse the world built here
    demo = ["-p", f"work_dir={tmp_path / 'work'}", "-p", f"demo_dir={demo_world}"]
    result = run_cli("generate", "copy-paste", "--out", tmp_path / "cp", "-p", "n_per_class=6", *demo)
    assert result.returncode == 0, result.stderr
    assert (demo_world / "README.txt").is_file() and len(_records(tmp_path / "cp/copy_paste")) == 30
