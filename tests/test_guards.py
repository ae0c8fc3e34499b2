"""Nothing mixed, nothing overwritten (issue 11): input guards, output ownership, interrupted runs, one-line errors.

Each test builds a tiny world in a temporary folder from a few of the real photos beside the checkout and runs the
command in this process (`fruit_synth.cli.main`), or as a subprocess where a second process is the point."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import CLI, ROOT, cli
from fruit_synth.cli import variant_names

CLASSES = ["orange", "kiwi"]


@pytest.fixture
def world(tmp_path: Path, data: Path) -> Path:
    "Four supermarket photos and two plain white-background photos per class, three backgrounds."
    for name in CLASSES:
        for kind, count in (("photos", 4), ("white", 2)):
            (tmp_path / kind / name).mkdir(parents=True)
            for path in sorted((data / kind / name).glob("*.jpg"))[:count]: shutil.copy(path, tmp_path / kind / name)
    (tmp_path / "bg").mkdir()
    for path in sorted((data / "backgrounds").glob("*.jpg"))[:3]: shutil.copy(path, tmp_path / "bg")
    return tmp_path


def small(world: Path, *extra: str) -> list[str]:
    "Settings options for the tiny world: two classes, a few images, the world's folders."
    return ["--profile", "grocery", "-p", "classes=orange, kiwi", "-p", "plurals=oranges, kiwis",
            "-p", f"real_dir={world / 'photos'}", "-p", f"mask_dir={world / 'white'}", "-p", f"backgrounds_dir={world / 'bg'}",
            "-p", f"work_dir={world / 'work'}", "-p", "test_per_class=2", "-p", "masks_per_class=2", "-p", "min_backgrounds=2",
            "-p", "n_per_class=4", "-p", "image_size=64", "-p", "test_domains=", *extra]  # no web photos in the tiny world


def one_line_error(status: int, err: str, *needles: str) -> None:
    "Exit status 2, a single `error:` line on stderr (no traceback) holding every needle."
    errors = [line for line in err.splitlines() if "error:" in line]
    assert status == 2 and len(errors) == 1 and "Traceback" not in err, (status, err)
    for needle in needles: assert needle in errors[0], (needle, errors[0])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# 1. generated images are never real photos
def test_generated_dataset_in_real_dir_is_not_taken_as_real_photos_and_generate_refuses_it(world, capsys):
    refused = cli(capsys, "generate", "copy-paste", "--out", world / "photos", "--jobs", "1", *small(world))
    one_line_error(*refused[::2], "is inside real_dir", "give an --out outside it")
    assert not (world / "photos/copy_paste").exists()
    fake = world / "photos/copy_paste"  # as an older version would have left it
    shutil.copytree(world / "photos/orange", fake / "orange")
    (fake / "dataset.json").write_text(json.dumps({"variant": "copy_paste", "complete": True}))
    status, out, err = cli(capsys, "sources", *small(world))
    assert status == 0, err
    report = json.loads((world / "work/grocery/sources.json").read_text())
    assert {row["cls"]: row["real_found"] for row in report["classes"]} == {"orange": 4, "kiwi": 4}
    assert not [p for paths in report["test_photos"].values() for p in paths if "copy_paste" in p]
    assert "left out 1 folder(s) fruit-synth generated" in out and "copy_paste" in out
    given = cli(capsys, "sources", *small(world, "-p", f"real_dir={fake}"))
    one_line_error(given[0], given[2], "a folder fruit-synth generated", "dataset.json")


# 2. shop photos are no cut-outs
def test_shop_photos_as_cutout_sources_are_rejected_with_reasons_and_a_qc_grid(world, capsys):
    status, _, err = cli(capsys, "sources", *small(world, "-p", f"mask_dir={world / 'photos'}"))
    one_line_error(status, err, "class 'orange': only 0 valid cut-outs of 2", "background not plain", "QC grid")
    grid = Path(re.search(r"QC grid of the rejected photos and why: (\S+\.jpg)", err).group(1))
    assert grid.is_file() and Image.open(grid).width > 100


# 3. a parent folder as --test
def test_a_parent_folder_as_test_is_refused_and_says_where_the_class_folders_are(world, capsys):
    parent = world / "several"
    for dataset in ("first", "second"):
        for name in CLASSES: shutil.copytree(world / "photos" / name, parent / dataset / "inner" / name)
    status, _, err = cli(capsys, "evaluate", "--model", world / "no-model", "--test", parent, "--out", world / "eval", *small(world))
    one_line_error(status, err, "no class folder matching 'orange'", "class folders further down", "first/inner/orange")
    assert not (world / "eval").exists()


def test_mask_files_and_extra_class_folders_in_a_test_folder(world):
    from fruit_synth.core.settings import load_settings
    from fruit_synth.data.sources import folder_photos
    settings = load_settings("grocery", small(world)[3::2])
    Image.new("L", (64, 64), 255).save(world / "photos/orange/grocery_0_mask.png")
    shutil.copytree(world / "photos/kiwi", world / "photos/apple")
    (world / "photos/kiwi/empty.jpg").write_bytes(b"")
    photos, lines = folder_photos(settings, world / "photos")
    assert {name: len(paths) for name, paths in photos.items()} == {"orange": 4, "kiwi": 4}  # no mask file, no empty file
    text = "\n".join(lines)
    assert "skipped files: 1" in text and "empty.jpg: empty file" in text
    assert "match no class and were not used: apple" in text


# 4. tiny, strip-shaped and animated images
def test_tiny_strip_and_animated_images_are_skipped_with_a_counted_reason(world, capsys):
    orange = world / "photos/orange"
    Image.new("RGB", (1, 1), "orange").save(orange / "dot.png")
    Image.new("RGB", (4000, 50), "orange").save(orange / "strip.png")
    frames = [Image.new("RGB", (80, 80), colour) for colour in ("orange", "red")]
    frames[0].save(orange / "moving.png", format="GIF", save_all=True, append_images=frames[1:])
    status, out, err = cli(capsys, "sources", *small(world))
    assert status == 0, err
    reasons = {Path(row["path"]).name: row["reason"] for row in json.loads((world / "work/grocery/sources.json").read_text())["skipped"]}
    assert "min_image_edge = 32" in reasons["dot.png"] and "max_aspect_ratio = 4" in reasons["strip.png"]
    assert "animated image (2 frames" in reasons["moving.png"]
    assert "skipped files: 3" in out
    lenient = cli(capsys, "sources", *small(world, "-p", "min_image_edge=1", "-p", "max_aspect_ratio=100"))
    assert lenient[0] == 0 and "skipped files: 1" in lenient[1], lenient[2]  # only the animated one is left out now


# 5. method and variant must agree
def test_a_variant_made_by_another_method_is_an_error(world, capsys):
    status, _, err = cli(capsys, "generate", "diffusion", "--variant", "copy_paste", "--out", world / "ds", *small(world))
    one_line_error(status, err, "--variant copy_paste is made by copy-paste, not diffusion",
                   f"fruit-synth generate copy-paste --out {world / 'ds'} --profile grocery")
    assert not (world / "ds").exists()
    status, _, err = cli(capsys, "generate", "copy-paste-heaps", "--out", world / "ds", *small(world))
    one_line_error(status, err, "unknown method or variant; give one of few-shot, copy-paste")


# 6. class names are plain folder names
@pytest.mark.parametrize("name", ["../../evil", "a/b", ".", "x\\y"])
def test_class_names_that_are_not_plain_folder_names_are_refused(world, capsys, name):
    status, _, err = cli(capsys, "generate", "copy-paste", "--out", world / "ds", *small(world, "-p", f"classes={name}, kiwi"))
    one_line_error(status, err, f"class name {name!r} is not a plain folder name")
    assert not (world / "ds").exists() and not (world.parent / "evil").exists()


# 7. a command writes only into its own or empty folders
def test_evaluate_refuses_a_training_run_and_report_refuses_a_users_folder(world, capsys):
    run = world / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"schema": 2, "selected": [], "variant": "copy_paste"}))
    (run / "predictions.csv").write_text("the training run's own\n")
    before = snapshot(run)
    status, _, err = cli(capsys, "evaluate", "--model", run, "--test", world / "photos", "--out", run, *small(world))
    one_line_error(status, err, "holds the output of `fruit-synth train`", f"--out {run}-evaluate")
    assert snapshot(run) == before
    mine = world / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("<p>my own page</p>")
    status, _, err = cli(capsys, "report", "--out", mine, *small(world))
    one_line_error(status, err, "holds files fruit-synth did not write (index.html)", "nothing was changed")
    assert snapshot(mine) == {"index.html": b"<p>my own page</p>"}


# 8. an interrupted train leaves the earlier run whole
def _fake_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps({"variant": "copy_paste", "complete": True, "classes": CLASSES}))
    (folder / "manifest.jsonl").write_text("")
    return folder


def test_an_interrupted_train_leaves_the_earlier_run_as_it_was(world, capsys, monkeypatch):
    import fruit_synth.learn.run as run
    from fruit_synth.learn.evaluate import toy_result
    data = _fake_dataset(world / "datasets/copy_paste")
    def finished(data, settings, out, test, progress=True):
        (out / "model.pt").write_text("first model")
        return toy_result(settings.classes, 0.5)  # the command writes its metrics.json
    monkeypatch.setattr(run, "train_and_test", finished)
    status, out, err = cli(capsys, "train", "--data", data, "--out", world / "run", "--test", world / "photos", *small(world))
    assert status == 0, err
    before = snapshot(world / "run")
    def interrupted(data, settings, out, test, progress=True):
        (out / "model.pt").write_text("half-trained second model")
        raise KeyboardInterrupt
    monkeypatch.setattr(run, "train_and_test", interrupted)
    status, _, err = cli(capsys, "train", "--data", data, "--out", world / "run", "--test", world / "photos", *small(world))
    assert status == 130 and "interrupted" in err
    assert snapshot(world / "run") == before  # model.pt and metrics.json still belong together
    assert sorted(p.name for p in world.iterdir() if p.name.startswith(".run")) == []  # no half-written folder left
    foreign = world / "holiday"
    foreign.mkdir()
    (foreign / "photo.jpg").write_bytes(b"precious")
    status, _, err = cli(capsys, "train", "--data", data, "--out", foreign, "--test", world / "photos", *small(world))
    one_line_error(status, err, "holds files fruit-synth did not write (photo.jpg)")
    assert (foreign / "photo.jpg").read_bytes() == b"precious"


# 9. two generate on the same folder; 15. a smaller rerun says what it removed
def test_a_second_generate_on_the_same_folder_waits_for_the_first_and_a_smaller_rerun_says_what_it_removes(world, capsys):
    from fruit_synth.generate.datasets import hold_dataset_lock, release_dataset_lock
    status, _, err = cli(capsys, "generate", "copy-paste", "--out", world / "ds", "--jobs", "1", *small(world))
    assert status == 0, err
    folder = world / "ds/copy_paste"
    hold_dataset_lock(folder)  # this process plays the first command, still writing
    second = subprocess.Popen([str(CLI), "generate", "copy-paste", "--out", str(world / "ds"), "--jobs", "1", *small(world)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        waited = ""
        deadline = time.time() + 120
        while time.time() < deadline and second.poll() is None and f"waiting for process {os.getpid()}" not in waited:
            waited += second.stderr.readline()
        assert f"waiting for process {os.getpid()}" in waited, waited
        assert second.poll() is None  # it waits rather than writing alongside
    finally:
        release_dataset_lock(folder)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0 and "Traceback" not in err, err
    status, out, err = cli(capsys, "generate", "copy-paste", "--out", world / "ds", "--jobs", "1", *small(world, "-p", "n_per_class=2"))
    assert status == 0, err
    assert "removed 4 image(s) of an earlier run" in out and "removed 4 image(s)" in err
    assert len([path for path in (folder / "orange").iterdir() if path.stem.isdigit()]) == 2  # images: the camera keeps JPEGs


def test_a_run_of_another_seed_never_rebuilds_the_cutouts_a_run_reads(world):
    "Two runs in one work folder with other seeds (the ablations do this, in turn or side by side) each keep their own cut-outs."
    from fruit_synth.core.settings import load_settings
    from fruit_synth.data.sources import cutout_library
    common = {"classes": "orange, kiwi", "plurals": "oranges, kiwis", "mask_dir": str(world / "white"),
              "real_dir": str(world / "photos"), "backgrounds_dir": str(world / "bg"), "work_dir": str(world / "work"),
              "masks_per_class": "2", "min_backgrounds": "2"}
    first, _ = cutout_library(load_settings("grocery", {**common, "seed": "0"}), progress=False)
    written = {path: path.stat().st_mtime_ns for path in first.out.rglob("*") if path.is_file()}
    assert written and all(record.path.is_file() for record in first.cutouts)
    second, _ = cutout_library(load_settings("grocery", {**common, "seed": "1"}), progress=False)
    assert second.out != first.out and "seed1" in second.out.name
    assert {path: path.stat().st_mtime_ns for path in first.out.rglob("*") if path.is_file()} == written  # untouched
    again, _ = cutout_library(load_settings("grocery", {**common, "seed": "0"}), progress=False)
    assert again.reused and again.out == first.out and {path: path.stat().st_mtime_ns for path in first.out.rglob("*") if path.is_file()} == written


# 10. nan, inf and huge integers
@pytest.mark.parametrize("override", ["lr=nan", "val_fraction=nan", "scale_min=nan", "pile_scale=nan, 0.3", "lr=inf",
                                      "seed=99999999999999999999999", "cache_mb=99999999999999999999999"])
def test_non_finite_numbers_and_huge_integers_are_refused_at_settings_time(capsys, override):
    status, _, err = cli(capsys, "settings", "--profile", "grocery", "-p", override)
    one_line_error(status, err, f"override {override}:", "expected")


# 11. suggestions work as printed
def test_the_suggested_command_for_a_folder_that_is_not_a_dataset_works_as_printed(world, capsys, monkeypatch):
    status, _, err = cli(capsys, "train", "--data", world / "photos", "--out", world / "run", *small(world))
    one_line_error(status, err, "is not a fruit-synth dataset", "give it as --test")
    command = re.search(r"`(fruit-synth generate [^`]+)`", err).group(1)
    assert "--profile grocery" in command and f"work_dir={world / 'work'}" in command
    status, out, err = cli(capsys, *shlex.split(command)[1:], "--jobs", "1")
    assert status == 0, err
    data = re.search(r"then give --data (\S+)", cli(capsys, "train", "--data", world / "photos", "--out", world / "run",
                                                      *small(world))[2]).group(1)
    assert (Path(data) / "dataset.json").is_file()
    (Path(data) / "dataset.json").write_text(json.dumps({"complete": False}))
    status, _, err = cli(capsys, "train", "--data", data, "--out", world / "run", *small(world))
    one_line_error(status, err, "is an incomplete dataset", f"fruit-synth generate copy-paste --out {Path(data).parent} --profile grocery")


# 12. settings.ini errors
def test_settings_file_errors_name_the_line_and_the_text(tmp_path, capsys, world):
    text = (ROOT / "settings.ini").read_text()
    cases = {"header": (text.replace("[paper]\n", "[paper\n"), "broken section header '[paper'"),
             "bytes": (text.replace("[paper]\n", "[paper]\nprompt = caf\xe9 {plural}\n"), "byte 0xe9 is not UTF-8"),
             "twice": (text.replace("[paper]\n", "[paper]\nseeds = 2\nseeds = 4\n"), "'seeds = 4' sets 'seeds' a second time"),
             "typo": (text.replace("[paper]\n", "[paper]\nepoch_grid = 5\n"), "did you mean 'epochs_grid'?")}
    for name, (content, needle) in cases.items():
        path = tmp_path / f"{name}.ini"
        path.write_bytes(content.encode("latin-1" if name == "bytes" else "utf-8"))
        status, _, err = cli(capsys, "settings", "--profile", "paper", "--settings", path)
        one_line_error(status, err, needle, str(path) if name != "typo" else "on line")
    status, _, err = cli(capsys, "settings", "--settings", tmp_path)
    one_line_error(status, err, "is a folder, expected a settings file")
    status, _, err = cli(capsys, "sources", *small(world, "-p", f"real_dir={tmp_path / 'header.ini'}"))
    one_line_error(status, err, "real_dir", "is a file, expected a folder with a sub-folder per class")
    status, _, err = cli(capsys, "sources", *small(world, "-p", f"backgrounds_dir={tmp_path / 'header.ini'}"))
    one_line_error(status, err, "backgrounds_dir", "is a file, expected a folder of background photos")


# 13. no tracebacks
def test_permission_errors_demo_folders_bad_seeds_and_plain_value_errors_are_one_line(tmp_path, capsys, monkeypatch):
    import fruit_synth.data.sources as sources
    import fruit_synth.generate.variants as variants
    from fruit_synth.generate.copy_paste import CopyPasteParams
    def read_only(settings, progress=True):
        raise PermissionError(13, "Permission denied", str(tmp_path / "work/grocery/sources.json"))
    monkeypatch.setattr(sources, "check_sources", read_only)
    status, _, err = cli(capsys, "sources", "--profile", "grocery")
    one_line_error(status, err, "Permission denied", "choose a folder you can write to")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/notes.txt").write_text("mine")
    status, _, err = cli(capsys, "demo", "--out", tmp_path / "mine")
    one_line_error(status, err, "holds files that are not a fruit-synth demo world")
    status, _, err = cli(capsys, "demo", "--out", tmp_path / "world", "--seed", "-1")
    one_line_error(status, err, "--seed: expected an integer in [0, 4294967295], found '-1'")
    monkeypatch.setattr(variants, "generate_variant", lambda *a, **k: CopyPasteParams(scale_min=0.9, scale_max=0.1))
    status, _, err = cli(capsys, "generate", "copy-paste", "--out", tmp_path / "ds", "--profile", "grocery")
    one_line_error(status, err, "copy-paste parameters")


# 14. paths, the settings file, Unicode folder names
def test_relative_paths_are_taken_from_the_current_folder_and_the_settings_file_is_named(tmp_path):
    result = subprocess.run([str(CLI), "settings", "--profile", "paper", "--settings", str(ROOT / "settings.ini"),
                             "-p", "real_dir=photos"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^real_dir\s+= {re.escape(str(tmp_path.resolve() / 'photos'))}\s+\(override\)$", result.stdout, re.M)
    assert f"settings {ROOT / 'settings.ini'} [paper] (given with --settings)" in result.stderr
    outside = subprocess.run([str(CLI), "settings"], cwd=tmp_path, capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if k != "FRUIT_SYNTH_SETTINGS"})
    assert outside.returncode == 0 and "the package's own: no settings.ini in" in outside.stderr, outside.stderr


def test_a_class_folder_in_decomposed_unicode_matches_its_composed_name(world):
    from fruit_synth.core.settings import load_settings
    from fruit_synth.data.sources import folder_photos
    (world / "photos/orange").rename(world / "photos/pe\u0302che")  # as macOS writes `pêche`
    settings = load_settings("grocery", ["classes=p\u00eache, kiwi", "plurals=p\u00eaches, kiwis"])
    photos, _ = folder_photos(settings, world / "photos")
    assert {name: len(paths) for name, paths in photos.items()} == {"p\u00eache": 4, "kiwi": 4}


# 15. variants in either spelling, once each
def test_report_variants_accept_either_spelling_once_each(world, capsys, monkeypatch):
    import fruit_synth.study.report as report
    assert variant_names(["copy-paste", "few_shot", "copy_paste", "few-shot"]) == ["copy_paste", "few_shot"]
    seen = {}
    def fake_report(settings, out, variants, jobs=1, progress=True, scheduler=None):
        seen["variants"] = report.chosen_variants(settings, variants)
        return out / "index.html"
    monkeypatch.setattr(report, "write_report", fake_report)
    status, out, err = cli(capsys, "report", "--out", world / "report", "--variants", "copy-paste", "copy_paste", *small(world))
    assert status == 0, err
    assert seen["variants"] == ["copy_paste"]
