"""Files fruit-synth wrote and reads back, damaged on purpose: a dataset's manifest.jsonl and dataset.json, an image it
lists, a model checkpoint, metrics.json and an entry of the probe's feature cache.

A damaged file is one line on stderr and exit 2, naming the file (and its line) and what repairs it, with nothing on
disk changed; `fruit-synth generate` with the same --out repairs a dataset. A damaged cache entry is computed again,
with a one-line note. Everything runs in this process on a tiny world of a few real photos (two classes)."""
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, ROOT, cli, profile_section
from fruit_synth.cli import main

CLASSES = ["orange", "kiwi"]


def small(world: Path, *extra: str) -> list[str]:
    "Settings options for the tiny world: its own settings file (short options, so suggested commands fit in one line)."
    return ["--settings", str(world / "settings.ini"), "--profile", "grocery", *extra]


SETTINGS = {"classes": "orange, kiwi", "plurals": "oranges, kiwis", "test_per_class": 2, "masks_per_class": 2,
            "min_backgrounds": 2, "n_per_class": 10, "image_size": 64, "train_mode": "probe", "pretrained": "false",
            "test_domains": ""}  # the tiny world has no second domain


def refused(capsys, *argv) -> str:
    "The one error line of a refused command (exit 2, no traceback); besides it, stderr holds only the lines every run prints first."
    status, _, err = cli(capsys, *argv)
    preamble = (f"fruit-synth {argv[0]}: settings ", "--test: ")  # the settings read; the test photos found
    lines = [line for line in err.splitlines() if not line.startswith(preamble)]
    assert status == 2 and len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err, (status, err[-3000:])
    return lines[0]


def snapshot(*folders: Path) -> dict[str, bytes]:
    "Every file under `folders`, by path, with its bytes."
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    "Four supermarket and two white-background photos per class, three backgrounds, and a copy-paste set of 2 x 10 images."
    world = tmp_path_factory.mktemp("hostile-files")
    for name in CLASSES:
        for kind, count in (("photos", 4), ("white", 2)):
            (world / kind / name).mkdir(parents=True)
            for path in sorted((DATA / kind / name).glob("*.jpg"))[:count]: shutil.copy(path, world / kind / name)
    (world / "bg").mkdir()
    for path in sorted((DATA / "backgrounds").glob("*.jpg"))[:3]: shutil.copy(path, world / "bg")
    folders = {"real_dir": world / "photos", "mask_dir": world / "white", "backgrounds_dir": world / "bg", "work_dir": world / "work"}
    (world / "settings.ini").write_text(profile_section((ROOT / "settings.ini").read_text(), "grocery", {**SETTINGS, **folders}))
    assert main(["generate", "copy-paste", "--out", str(world / "pristine"), "--jobs", "1", *small(world)]) == 0
    return world


@pytest.fixture
def dataset(world: Path, tmp_path: Path) -> Path:
    "A copy of the world's copy-paste dataset, to damage."
    return Path(shutil.copytree(world / "pristine/copy_paste", tmp_path / "datasets/copy_paste"))


def train_refused(capsys, world: Path, dataset: Path) -> str:
    "The error line of `fruit-synth train` on `dataset`, after checking that nothing on disk changed."
    before = snapshot(world, dataset.parent.parent)
    line = refused(capsys, "train", "--data", dataset, "--test", world / "photos", "--out", dataset.parent.parent / "run",
                   *small(world))
    assert snapshot(world, dataset.parent.parent) == before
    return line


def repaired_by_generate(capsys, world: Path, dataset: Path) -> None:
    "`fruit-synth generate copy-paste` with the same --out gives back the undamaged dataset."
    status, _, err = cli(capsys, "generate", "copy-paste", "--out", dataset.parent, "--jobs", "1", *small(world))
    assert status == 0, err[-3000:]
    pristine = world / "pristine/copy_paste"
    assert (dataset / "manifest.jsonl").read_bytes() == (pristine / "manifest.jsonl").read_bytes()
    for record in map(json.loads, (pristine / "manifest.jsonl").read_text().splitlines()):
        assert (dataset / record["file"]).read_bytes() == (pristine / record["file"]).read_bytes()
    info, expected = (json.loads((folder / "dataset.json").read_text()) for folder in (dataset, pristine))
    assert {**info, "updated": None} == {**expected, "updated": None}


# 1. the dataset manifest
def _lines(dataset: Path) -> list[str]:
    return (dataset / "manifest.jsonl").read_text().splitlines(keepends=True)


def test_a_manifest_line_cut_short_is_named_and_generate_repairs_it(capsys, world, dataset):
    lines = _lines(dataset)
    lines[6] = lines[6][:len(lines[6]) // 2] + "\n"  # line 7, as a disk that lost the end of a block would leave it
    (dataset / "manifest.jsonl").write_text("".join(lines))
    line = train_refused(capsys, world, dataset)
    assert f"{dataset / 'manifest.jsonl'} line 7:" in line and "fruit-synth generate copy-paste" in line
    assert f"--out {dataset.parent}" in line, line
    repaired_by_generate(capsys, world, dataset)


def test_a_manifest_whose_last_line_is_missing_disagrees_with_dataset_json(capsys, world, dataset):
    (dataset / "manifest.jsonl").write_text("".join(_lines(dataset)[:-1]))
    line = train_refused(capsys, world, dataset)
    assert "manifest.jsonl" in line and "dataset.json" in line and "19" in line and "20" in line, line
    repaired_by_generate(capsys, world, dataset)


def test_duplicated_manifest_lines_are_named_and_generate_repairs_them(capsys, world, dataset):
    lines = _lines(dataset)
    (dataset / "manifest.jsonl").write_text("".join(lines[:10] + lines[1:4] + lines[10:]))  # 23 lines for 20 images
    line = train_refused(capsys, world, dataset)
    assert f"{dataset / 'manifest.jsonl'} line 11:" in line and "line 2" in line and "fruit-synth generate" in line, line
    repaired_by_generate(capsys, world, dataset)


def test_a_manifest_of_random_bytes_is_named_and_generate_repairs_it(capsys, world, dataset):
    (dataset / "manifest.jsonl").write_bytes(random.Random(0).randbytes(3000))
    line = train_refused(capsys, world, dataset)
    assert f"{dataset / 'manifest.jsonl'} line 1:" in line and "fruit-synth generate" in line, line
    repaired_by_generate(capsys, world, dataset)


def test_a_manifest_record_of_another_shape_is_named(capsys, world, dataset):
    lines = _lines(dataset)
    record = json.loads(lines[4])
    lines[4] = json.dumps({**record, "index": "four", "split": "test"}) + "\n"
    (dataset / "manifest.jsonl").write_text("".join(lines))
    line = train_refused(capsys, world, dataset)
    assert f"{dataset / 'manifest.jsonl'} line 5:" in line and "index" in line, line


def test_an_image_changed_after_generation_fails_its_recorded_sha256(capsys, world, dataset):
    record = json.loads(_lines(dataset)[3])
    image = dataset / record["file"]
    Image.open(image).convert("RGB").rotate(90).save(image)  # still an image of the class, but not the one generated
    line = train_refused(capsys, world, dataset)
    assert str(image) in line and "sha256" in line and "line 4" in line and "fruit-synth generate" in line, line
    repaired_by_generate(capsys, world, dataset)


# 2. dataset.json
@pytest.mark.parametrize("text", ["[1, 2, 3]", '{"complete": true, "classes": "orange"}', '{"complete": true, "classes": ['])
def test_a_dataset_json_that_is_not_a_dataset_description_is_named_and_generate_repairs_it(capsys, world, dataset, text):
    (dataset / "dataset.json").write_text(text)
    line = train_refused(capsys, world, dataset)
    assert str(dataset / "dataset.json") in line and "fruit-synth generate" in line, line
    repaired_by_generate(capsys, world, dataset)


# 3. model checkpoints
def _checkpoint(path: Path, **changes) -> Path:
    "A small checkpoint as training writes it (ResNet18, random weights, the world's classes), with `changes` made to it."
    import torch
    from fruit_synth.learn.batches import save_checkpoint
    from fruit_synth.learn.models import classifier
    torch.manual_seed(0)
    path.parent.mkdir(parents=True)
    save_checkpoint(classifier("resnet18", 2, pretrained=False), path, "resnet18", CLASSES, 64, seed=0, epochs=1)
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None: payload.pop(key)
        elif callable(value): value(payload)
        else: payload[key] = value
    torch.save(payload, path)
    return path


def _nan_weights(payload: dict) -> None:
    payload["state_dict"]["fc.weight"].fill_(float("nan"))


def _text_weight(payload: dict) -> None:
    payload["state_dict"]["fc.bias"] = "zeros"


@pytest.mark.parametrize("changes, needle", [
    ({"image_size": "64"}, "image_size"),
    ({"state_dict": _nan_weights}, "fc.weight"),
    ({"classes": None}, "classes"),
    ({"classes": "orange"}, "classes"),
    ({"mean": [0.5, "x", 0.5]}, "mean"),
    ({"state_dict": _text_weight}, "fc.bias"),
], ids=["image-size-text", "nan-weights", "no-classes", "classes-text", "mean-text", "weight-text"])
def test_a_damaged_checkpoint_is_named_by_evaluate(capsys, world, tmp_path, changes, needle):
    model = _checkpoint(tmp_path / "run/model.pt", **changes)
    before = snapshot(world, tmp_path)
    line = refused(capsys, "evaluate", "--model", model.parent, "--test", world / "photos", "--out", tmp_path / "again",
                   *small(world))
    assert snapshot(world, tmp_path) == before
    assert str(model) in line and needle in line and "fruit-synth train" in line, line


# 4. metrics.json
def _strict_json(text: str):
    "JSON as the standard defines it: NaN and Infinity are not numbers of it."
    def refuse(token): raise ValueError(f"{token} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_metrics_json_is_valid_json_and_reads_back_as_written(capsys, world, tmp_path):
    from fruit_synth.learn.evaluate import read_metrics
    status, _, err = cli(capsys, "generate", "few-shot", "--out", tmp_path / "datasets", *small(world))  # 1 training image per class
    assert status == 0, err
    status, _, err = cli(capsys, "train", "--data", tmp_path / "datasets/few_shot", "--out", tmp_path / "run", *small(world))
    assert status == 0, err[-3000:]
    written = _strict_json((tmp_path / "run/metrics.json").read_text())
    assert written["domain_gap"]["per_class"] == {"orange": None, "kiwi": None}  # one image each: no distance to measure
    metrics = read_metrics(tmp_path / "run/metrics.json")
    assert np.isnan(metrics["domain_gap"]["per_class"]["orange"]) and metrics["domain_gap"]["overall"] > 0


def _whole_result() -> dict:
    "A metrics.json object whose every field is right (made up, for damaging one at a time)."
    from fruit_synth.learn.evaluate import toy_result
    return toy_result(["orange", "kiwi"]).to_dict()


@pytest.mark.parametrize("text, needle", [
    ('{"schema": 2, "summary": NaN}', "line 1"),
    ("[1, 2]", "a list, not a JSON object"),
    ('{"schema": 2, "variant": "copy_paste"}', "missing"),
    ('{"schema": 1, "variant": "copy_paste"}', "schema 1, expected 2"),
    ('{"schema": 2,\n "variant": "copy_pa', "line 2"),
    (json.dumps(_whole_result() | {"selected": [_whole_result()["selected"][0] | {"seed": "zero"}]}),
     "/selected/0/seed: expected an integer, found a string"),
    (json.dumps(_whole_result() | {"summary": {"test_accuracy": {}}}), "/summary: missing val_accuracy"),
    (json.dumps({"schema": 2, "non_finite": {"/summary/nowhere": "NaN"}, **{key: None for key in
                 ["variant", "profile", "classes", "backbone", "pretrained", "image_size", "epochs_grid", "lr", "batch_size",
                  "augment", "dataset", "test", "runs", "selected", "summary", "domain_gap", "files", "device", "seconds"]}}),
     "'non_finite' lists '/summary/nowhere'"),
], ids=["bare-nan", "list", "keys-missing", "old-schema", "cut-short", "nested-type", "nested-missing", "non-finite-place"])
def test_a_damaged_metrics_json_is_named_when_read_back(tmp_path, text, needle):
    from fruit_synth.learn.evaluate import read_metrics
    (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(ValueError) as error:
        read_metrics(tmp_path / "metrics.json")
    message = str(error.value)
    assert str(tmp_path / "metrics.json") in message and needle in message and "fruit-synth train" in message, message
    assert "\n" not in message


# 5. the probe's feature cache
def _bad_entry(kind: str, path: Path) -> None:
    if kind == "wrong-shape": np.save(path, np.zeros(7, np.float32))
    elif kind == "nan": np.save(path, np.full(512, np.nan, np.float32))
    elif kind == "strings": np.save(path, np.array(["a feature"] * 512))
    elif kind == "objects": np.save(path, np.array([{"a": 1}] * 512, dtype=object), allow_pickle=True)
    else: path.write_bytes(path.read_bytes()[:100])  # cut short


@pytest.mark.parametrize("kind", ["wrong-shape", "nan", "strings", "objects", "cut-short"])
def test_a_damaged_feature_cache_entry_is_computed_again_with_a_note(capsys, world, tmp_path, kind):
    from fruit_synth.core.images import file_sha256
    from fruit_synth.learn.probe import FeatureCache
    images = sorted((world / "pristine/copy_paste/orange").glob("0000[0-2].*"))
    def cache(): return FeatureCache(tmp_path / "features", "resnet18", 32, pretrained=False, device="cpu")
    expected = cache().features(images)
    damaged = cache().path(file_sha256(images[1]))
    _bad_entry(kind, damaged)
    capsys.readouterr()
    again = cache()
    features = again.features(images)
    err = capsys.readouterr().err
    assert features.dtype == np.float32 and np.allclose(features, expected, atol=1e-5)
    assert (again.loaded, again.computed) == (2, 1)
    assert len(err.splitlines()) == 1 and str(damaged) in err and "computed again" in err, err
    assert np.allclose(np.load(damaged), expected[1], atol=1e-5)  # the entry on disk is whole again
