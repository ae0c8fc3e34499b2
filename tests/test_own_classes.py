"""The whole study on a user's own classes, end to end: `fruit-synth report` with a profile of their own, two classes
that are not the study's five, class folders named otherwise (`class_folders`), RGBA cut-outs with the photos they
were cut from (`cutout_originals`), real test photos and backgrounds.

What the report writes names kiwi and banana, counts the test photos the user gave, and never names a default class
the user did not ask for (orange, peach, tomato)."""
import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_cli

CLASSES = ["kiwi", "banana"] # not in alphabetical order: a class index taken from sorted names would show
FOLDERS = {"kiwi": "Kiwifruit", "banana": "Cavendish"} # neither the class nor its plural: only class_folders maps them
TEST_PHOTOS = {"kiwi": 5, "banana": 6} # different per class, so counts of the wrong class show
CUTOUTS = 5 # per class, as the study cut
BACKGROUNDS = 4
OTHERS = ["orange", "peach", "tomato"] # the default classes the user did not ask for
VARIANTS = ["few_shot", "copy_paste"]

# The user's profile, as they would add it to their copy of settings.ini: paths relative to the file's folder.
PROFILE = f"""
[own]
classes = {", ".join(CLASSES)}
plurals = kiwis, bananas
class_folders = {"; ".join(f"{name} = {folder}" for name, folder in FOLDERS.items())}
real_dir = photos
mask_dir = cutouts
mask_method = rgba
cutout_originals = originals
masks_per_class = {CUTOUTS}
backgrounds_dir = backgrounds
min_backgrounds = {BACKGROUNDS}
test_per_class = 1000
allow_fewer = true
# the study's pasting, as in [paper]
blending = hard
camera =
"""

# Small and fast: the demo profile's backbone and sizes, smaller still; the probe; one seed.
FAST = {"n_per_class": 6, "image_size": 64, "input_size": 64, "backbone": "efficientnet_lite0", "train_mode": "probe",
        "seeds": 1, "epochs_grid": 1, "batch_size": 16, "lr": 1e-3, "bootstrap": 100}


def rgba_cutout(photo: Path, out: Path) -> None:
    "The fruit of a photo on white as an RGBA PNG: opaque where the photo is not near-white; transparent pixels black, as cut-out tools save them."
    pixels = np.asarray(Image.open(photo).convert("RGB"))
    fruit = pixels.min(axis=2) < 220
    rgba = np.dstack([pixels * fruit[..., None], np.where(fruit, 255, 0)]).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(out)


def user_folders(data: Path, root: Path) -> None:
    "The user's folders under `root`, copied from the shared photos: cut-outs, their originals, test photos, backgrounds."
    for name, folder in FOLDERS.items():
        for sub in ("cutouts", "originals", "photos"): (root / sub / folder).mkdir(parents=True)
        for photo in sorted((data / "white" / name).glob("*.jpg"))[:CUTOUTS]:
            shutil.copy(photo, root / "originals" / folder / photo.name)
            rgba_cutout(photo, root / "cutouts" / folder / f"{photo.stem}.png")
        for photo in sorted((data / "photos" / name).glob("*.jpg"))[:TEST_PHOTOS[name]]:
            shutil.copy(photo, root / "photos" / folder / photo.name)
    (root / "backgrounds").mkdir()
    for photo in sorted((data / "backgrounds").glob("*.jpg"))[:BACKGROUNDS]: shutil.copy(photo, root / "backgrounds")


@pytest.fixture(scope="module")
def study(tmp_path_factory, data) -> Path:
    "The user's folder after one report: their settings file (the project's plus [own]), their photos, work/ and report/."
    root = tmp_path_factory.mktemp("own-classes")
    user_folders(data, root)
    (root / "settings.ini").write_text((ROOT / "settings.ini").read_text() + PROFILE)
    fast = [part for key, value in FAST.items() for part in ("-p", f"{key}={value}")]
    result = run_cli("report", "--settings", root / "settings.ini", "--profile", "own", "--variants", *VARIANTS, *fast,
                     cwd=root)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (root / "report/index.html").is_file() and (root / "work/own/sources.json").is_file()  # beside the settings file
    return root


def readable_text(path: Path) -> str:
    "The text of a file the report wrote, without embedded pictures (base64) and, in HTML, without styles and scripts."
    text = path.read_text()
    if path.suffix == ".html": text = re.sub(r"<(style|script)\b.*?</\1>", " ", text, flags=re.S | re.I)
    return re.sub(r"(?:[A-Za-z0-9+/=]|\\n){120,}", " ", text)  # no words are 120 letters long; a picture's base64 is


def written_text_files(study: Path) -> list[Path]:
    "Every text file the report wrote under report_dir and work_dir."
    suffixes = {".html", ".json", ".jsonl", ".csv", ".ipynb", ".txt", ".md"}
    return sorted(p for folder in ("report", "work") for p in (study / folder).rglob("*") if p.suffix in suffixes)


def test_the_report_tables_name_the_users_classes(study: Path):
    html = (study / "report/index.html").read_text()
    tables = " ".join(re.findall(r"<table\b.*?</table>", html, re.S))
    for name in CLASSES: assert re.search(rf"<td>{name}</td>", tables), f"no table row for {name}"
    assert "chance (2 classes)" in html and "classes kiwi, banana" in re.sub(r"<[^>]+>", "", html)
    # the reference study's five-class figures are not set beside a report on other classes
    assert not re.search(r"<td>\d+(\.\d+)? / \d+(\.\d+)?</td>", tables), "the study's figures beside other classes"


def test_no_default_class_the_user_did_not_ask_for_appears_in_anything_the_report_wrote(study: Path):
    files = written_text_files(study)
    metrics = sorted((study / "report/runs").glob("*/metrics.json"))
    assert [p.parent.name for p in metrics] == sorted(VARIANTS)  # one metrics file per variant, no more
    assert {study / "report/index.html", *metrics} <= set(files)
    for path in files:
        text = readable_text(path).lower()
        for name in OTHERS:
            at = text.find(name)
            assert at < 0, f"{name!r} in {path.relative_to(study)}: ...{text[max(0, at - 150):at + 150]}..."
    for path in metrics:
        assert json.loads(path.read_text())["classes"] == CLASSES, path


def test_the_test_photos_per_class_are_those_the_user_gave(study: Path):
    for path in sorted((study / "report/runs").glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        assert metrics["test"]["per_class"] == TEST_PHOTOS, path
        assert metrics["test"]["images"] == sum(TEST_PHOTOS.values()), path
        for selected in metrics["selected"]:
            assert {name: row["support"] for name, row in selected["test"]["per_class"].items()} == TEST_PHOTOS, path
        with open(path.parent / "predictions.csv", newline="") as file: rows = list(csv.DictReader(file))
        by_folder = {folder: name for name, folder in FOLDERS.items()}
        assert [row["true"] for row in rows] == [by_folder[Path(row["path"]).parent.name] for row in rows]  # true = its folder
        assert {row["predicted"] for row in rows} <= set(CLASSES)
    sources = json.loads((study / "work/own/sources.json").read_text())
    assert {row["cls"]: row["test_sampled"] for row in sources["classes"]} == TEST_PHOTOS
    assert {row["cls"]: row["cutouts"] for row in sources["classes"]} == {name: CUTOUTS for name in CLASSES}
    assert sources["leakage_warnings"] == []  # each RGBA cut-out's original was found by its file stem
    html = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (study / "report/index.html").read_text()))
    assert f"On {sum(TEST_PHOTOS.values())} real test photos" in html
    for name, count in TEST_PHOTOS.items():
        assert re.search(rf"\b{name} {count} 0 {count} \b", html), f"the data-sources row of {name}: found, left out, tested"
