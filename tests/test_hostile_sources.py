"""Hostile input folders: the photo guards apply to every folder the sources stage reads, at any depth.

A folder fruit-synth wrote (a dataset, a run, a report, a cut-out library, a work folder, the demo world) found anywhere
inside real_dir, mask_dir or backgrounds_dir is left out and named, never read as photos; backgrounds pass the same
size, shape and animation guards as real photos; hidden files and broken links are counted, never dropped silently.
Each test builds a tiny world in a temporary folder from a few of the real photos beside the checkout and runs
`fruit-synth sources` in this process."""
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import DATA, cli
from test_guards import small
from fruit_synth.cli import main

CLASSES = ["orange", "kiwi"]


def build_world(folder: Path, data: Path) -> Path:
    "Four supermarket photos and two plain white-background photos per class, three backgrounds."
    for name in CLASSES:
        for kind, count in (("photos", 4), ("white", 2)):
            (folder / kind / name).mkdir(parents=True)
            for path in sorted((data / kind / name).glob("*.jpg"))[:count]: shutil.copy(path, folder / kind / name)
    (folder / "bg").mkdir(parents=True)
    for path in sorted((data / "backgrounds").glob("*.jpg"))[:3]: shutil.copy(path, folder / "bg")
    return folder


@pytest.fixture
def world(tmp_path: Path, data: Path) -> Path:
    return build_world(tmp_path, data)


@pytest.fixture(scope="module")
def written(tmp_path_factory, data: Path) -> dict[str, Path]:
    "Folders fruit-synth wrote, made once by the tool itself: a dataset, a work folder, a run, a report, a library, the demo world."
    from fruit_synth.data.demo import build_demo_world
    from fruit_synth.core.outputs import claim_output, write_marker
    root = tmp_path_factory.mktemp("written")
    source = build_world(root / "source", data)
    status = main([str(a) for a in ["generate", "copy-paste", "--out", root / "datasets", "--jobs", "1", *small(source)]])
    assert status in (0, None)
    assert main([str(a) for a in ["sources", *small(source)]]) in (0, None)  # fills source/work: sources.json, cut-outs
    run = root / "run"
    run.mkdir()
    write_marker(run, "train")
    report = claim_output(root / "report", "report")
    (report / "index.html").write_text("<html><title>fruit-synth report</title></html>")
    for folder in (run, report / "assets"):  # figures, and photos copied beside them
        folder.mkdir(exist_ok=True)
        for path in sorted((data / "photos/orange").glob("*.jpg"))[4:7]: shutil.copy(path, folder)
    build_demo_world(root / "demo-world", real_per_class=2, white_per_class=1, n_backgrounds=2, progress=False,
                     real_size=64, white_size=64, background_size=64)
    library = next((source / "work").rglob("library.json")).parent
    return {"dataset": root / "datasets/copy_paste", "work_dir": source / "work", "run": run, "report": report,
            "library": library, "demo_world": root / "demo-world"}


def sources_json(world: Path) -> dict:
    return json.loads((world / "work/grocery/sources.json").read_text())


def found(report: dict) -> dict[str, int]:
    return {row["cls"]: row["real_found"] for row in report["classes"]}


# 1. a generated dataset one level down inside a class folder of real_dir
def test_a_dataset_inside_a_class_folder_is_not_read_as_real_photos(world, written, capsys):
    shutil.copytree(written["dataset"], world / "photos/orange/copy_paste")
    status, out, err = cli(capsys, "sources", *small(world))
    assert status == 0, err
    report = sources_json(world)
    assert found(report) == {"orange": 4, "kiwi": 4}
    assert not [p for paths in report["test_photos"].values() for p in paths if "copy_paste" in p]
    assert "real_dir: left out 1 folder(s) fruit-synth generated" in out and "orange/copy_paste" in out, out
    assert "dataset.json" in out
    assert [row["path"] for row in report["left_out"]["real_dir"]["tool_folders"]] == [str(world / "photos/orange/copy_paste")]


# 2. any folder fruit-synth wrote, at any depth inside real_dir
@pytest.mark.parametrize("kind", ["dataset", "work_dir", "run", "report", "library", "demo_world"])
def test_every_kind_of_folder_fruit_synth_wrote_is_left_out_of_real_dir_at_any_depth(world, written, capsys, kind):
    deep = world / "photos/orange/old/stuff" / kind
    shutil.copytree(written[kind], deep, symlinks=True)
    status, out, err = cli(capsys, "sources", *small(world))
    assert status == 0, err
    report = sources_json(world)
    assert found(report) == {"orange": 4, "kiwi": 4}, (kind, found(report))
    assert f"orange/old/stuff/{kind}" in out, out
    assert not [row for row in report["skipped"] if str(deep) in row["path"]]  # not opened at all: no "not an image" rows


def test_train_test_folder_with_a_dataset_inside_tests_only_on_real_photos(world, written):
    from fruit_synth.core.settings import load_settings
    from fruit_synth.data.sources import folder_photos
    shutil.copytree(written["dataset"], world / "photos/orange/copy_paste")
    settings = load_settings("grocery", small(world)[3::2])
    photos, lines = folder_photos(settings, world / "photos", "--test")
    assert {name: len(paths) for name, paths in photos.items()} == {"orange": 4, "kiwi": 4}
    assert any("orange/copy_paste" in line and "fruit-synth" in line for line in lines), lines


# 3. the same folder inside backgrounds_dir and mask_dir
@pytest.mark.parametrize("depth", ["copy_paste", "old/copy_paste"])
def test_a_dataset_inside_backgrounds_dir_gives_no_backgrounds(world, written, capsys, depth):
    shutil.copytree(written["dataset"], world / "bg" / depth)
    status, out, err = cli(capsys, "sources", *small(world))
    assert status == 0, err
    report = sources_json(world)
    assert len(report["backgrounds"]) == 3 and not [p for p in report["backgrounds"] if "copy_paste" in p]
    assert "backgrounds: 3 usable" in out
    assert "backgrounds_dir: left out 1 folder(s) fruit-synth generated" in out and depth in out, out


def test_backgrounds_dir_that_is_a_dataset_is_refused(world, written, capsys):
    status, out, err = cli(capsys, "sources", *small(world, "-p", f"backgrounds_dir={written['dataset']}"))
    assert status == 2 and "backgrounds_dir" in err and "a folder fruit-synth generated" in err, (status, err)


def test_a_dataset_inside_mask_dir_gives_no_cutouts(world, written, capsys):
    shutil.copytree(written["dataset"], world / "white/orange/copy_paste")
    status, out, err = cli(capsys, "sources", *small(world))
    assert status == 0, err
    report = sources_json(world)
    assert not [p for p in report["cutout_sources"] if "copy_paste" in p]
    assert not [row for row in report["skipped"] if "copy_paste" in row["path"]]  # never a candidate, so never rejected either
    assert "mask_dir: left out 1 folder(s) fruit-synth generated" in out and "orange/copy_paste" in out, out


# 4. backgrounds pass the size, shape and animation guards of real photos
def test_tiny_strip_and_animated_backgrounds_are_skipped_with_a_counted_reason(world, capsys):
    bg = world / "bg"
    Image.new("RGB", (1, 1), "grey").save(bg / "dot.png")
    Image.new("RGB", (3000, 10), "grey").save(bg / "strip.png")  # 300 times longer than wide
    Image.new("RGB", (400, 40), "grey").save(bg / "long.png")
    frames = [Image.new("RGB", (80, 80), colour) for colour in ("green", "blue")]
    frames[0].save(bg / "moving.gif", save_all=True, append_images=frames[1:])
    status, out, err = cli(capsys, "sources", *small(world))
    assert status == 0, err
    report = sources_json(world)
    assert len(report["backgrounds"]) == 3 and "backgrounds: 3 usable" in out
    reasons = {Path(row["path"]).name: row["reason"] for row in report["skipped"] if row["where"] == "backgrounds_dir"}
    assert "min_image_edge = 32" in reasons["dot.png"]
    assert "3000x10 pixels" in reasons["strip.png"] and "max_aspect_ratio = 4" in reasons["long.png"]
    assert "animated image (2 frames" in reasons["moving.gif"]
    assert "skipped files: 4" in out and "backgrounds_dir: " + str(bg / "dot.png") in out
    lenient = cli(capsys, "sources", *small(world, "-p", "min_image_edge=1", "-p", "max_aspect_ratio=100"))
    assert lenient[0] == 0 and "skipped files: 2" in lenient[1] and "backgrounds: 5 usable" in lenient[1], lenient  # the strip is 300:1


# 5. hidden files and broken links are counted and reported
def test_hidden_files_and_broken_links_are_counted_and_named(world, data, capsys):
    photo = sorted((data / "photos/orange").glob("*.jpg"))[5]
    shutil.copy(photo, world / "photos/orange/.hidden.jpg")
    (world / "photos/orange/.DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (world / "photos/kiwi/.thumbs").mkdir()
    shutil.copy(photo, world / "photos/kiwi/.thumbs/t.jpg")
    os.symlink(world / "nowhere.jpg", world / "photos/kiwi/gone.jpg")
    shutil.copy(photo, world / "bg/._bg.jpg")
    os.symlink(world / "missing.jpg", world / "bg/lost.jpg")
    status, out, err = cli(capsys, "sources", *small(world))
    assert status == 0, err
    report = sources_json(world)
    assert found(report) == {"orange": 4, "kiwi": 4} and len(report["backgrounds"]) == 3
    real_line = next(line for line in out.splitlines() if line.startswith("note: real_dir: ") and "hidden" in line)
    assert "2 hidden files, 1 hidden folder and 1 broken link skipped" in real_line, real_line
    assert "kiwi/gone.jpg" in real_line and "fix or remove" in real_line
    bg_line = next(line for line in out.splitlines() if line.startswith("note: backgrounds_dir: ") and "hidden" in line)
    assert "1 hidden file and 1 broken link skipped" in bg_line and "lost.jpg" in bg_line, bg_line
    left_out = report["left_out"]
    assert sorted(Path(p).name for p in left_out["real_dir"]["hidden"]) == [".DS_Store", ".hidden.jpg", ".thumbs"]
    assert [Path(row["path"]).name for row in left_out["real_dir"]["broken_links"]] == ["gone.jpg"]
    assert [Path(row["path"]).name for row in left_out["backgrounds_dir"]["broken_links"]] == ["lost.jpg"]


def test_a_linked_folder_inside_a_class_folder_is_reported_not_followed(world, capsys):
    os.symlink(world / "photos", world / "photos/orange/loop")  # would read kiwi photos as oranges, or loop for ever
    status, out, err = cli(capsys, "sources", *small(world))
    assert status == 0, err
    assert found(sources_json(world)) == {"orange": 4, "kiwi": 4}
    assert "1 linked folder not followed" in out and "orange/loop" in out, out


def test_a_mask_file_in_capitals_is_not_counted_as_a_photo(tmp_path):
    "`X_MASK.png` beside `X.jpg` is a mask, whatever its case: one rule (masks.is_mask_file) for every folder read."
    from fruit_synth.data.sources import class_images
    folder = tmp_path / "real" / "orange"
    folder.mkdir(parents=True)
    photo = sorted((DATA / "photos" / "orange").glob("*.jpg"))[0]
    shutil.copy(photo, folder / "X.jpg")
    Image.new("L", (64, 64), 255).save(folder / "X_MASK.png")
    Image.new("L", (64, 64), 255).save(folder / "Y.Mask.png")
    found = class_images(tmp_path / "real", {"orange": ["orange"]})
    assert [p.name for p in found.images["orange"]] == ["X.jpg"]
