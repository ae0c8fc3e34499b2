"Training and evaluation fed bad input on purpose, and one small run end to end (random init, 32 px)."
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import Swatches
from fruit_synth.learn import batches
from fruit_synth.learn import evaluate
from fruit_synth.learn import train
from fruit_synth.learn.run import train_and_test
from fruit_synth.learn.batches import TrainingError
from fruit_synth.generate.datasets import generate
from fruit_synth.learn.models import ModelError, RESNET18_FILE, imagenet_model, resnet18_weights
from fruit_synth.core.settings import load_settings
from fruit_synth.data.sources import run_photos

CLASSES = ["orange", "kiwi", "banana"]


def toy_settings(**changes):
    base = {"classes": ", ".join(CLASSES), "plurals": "oranges, kiwis, bananas", "val_fraction": 0.25, "backbone": "resnet18",
            "pretrained": "false", "image_size": 32, "batch_size": 8, "epochs_grid": "1", "lr": 3e-3, "bootstrap": 100}
    return load_settings("demo", {**base, **changes})


def toy_dataset(root: Path, counts: dict[str, int]) -> Path:
    return generate(Swatches(), root, "swatches", counts, toy_settings(), jobs=1, progress=False)


def photos(folder: Path, names=CLASSES, per_class: int = 3) -> dict[str, list[Path]]:
    "A few test 'photos' per class (class-coloured squares of another size)."
    result = {}
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
        colour = Swatches.colours.get(name, (200, 50, 50))
        result[name] = []
        for index in range(per_class):
            path = folder / name / f"{index}.jpg"
            Image.new("RGB", (50, 60), colour).save(path)
            result[name].append(path)
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict, dict]:
    "One small trained run: (run folder, its metrics, its test photos)."
    root = tmp_path_factory.mktemp("run")
    folder = toy_dataset(root / "data", {name: 8 for name in CLASSES})
    test = photos(root / "test")
    metrics = train_and_test(folder, toy_settings(), root / "out", test, progress=False)
    return root / "out", metrics, test


def test_run_writes_every_file_and_the_schema(run):
    out, metrics, test = run
    assert {p.name for p in out.iterdir()} >= {"metrics.json", "predictions.csv", "model.pt", "confusion.png", "per_class_f1.png", "curves.png"}
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["schema"] == 2 and saved["classes"] == CLASSES and saved["test"]["images"] == 9
    assert saved["dataset"]["train"] + saved["dataset"]["val"] == 24 and saved["dataset"]["fingerprint"]
    selected = saved["selected"][0]["test"]
    assert 0 <= selected["accuracy"] <= 1 and selected["accuracy_ci"][0] <= selected["accuracy"] <= selected["accuracy_ci"][1]
    assert set(selected["per_class"]) == set(CLASSES) and np.array(selected["confusion"]).sum() == 9
    assert saved["runs"][0]["history"][0].keys() == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc"}
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 9 and list(rows[0]) == ["path", "true", "predicted", "p_orange", "p_kiwi", "p_banana"]
    assert abs(sum(float(rows[0][f"p_{name}"]) for name in CLASSES) - 1) < 1e-3


def test_evaluate_checkpoint_again_gives_the_same_numbers(run, tmp_path):
    out, metrics, test = run
    again = evaluate.evaluate_checkpoint(out, test, tmp_path, toy_settings(backbone="efficientnet_lite0"))
    assert again["backbone"] == "resnet18"  # the checkpoint's backbone, not the settings'
    assert again["test"]["accuracy"] == pytest.approx(metrics["selected"][0]["test"]["accuracy"])
    assert (tmp_path / "evaluation.json").is_file() and (tmp_path / "predictions.csv").is_file()


def test_test_set_with_other_classes_is_refused(run, tmp_path):
    out, _, _ = run
    other = photos(tmp_path, ["orange", "kiwi", "peach"])
    with pytest.raises(TrainingError, match=r"classes \['orange', 'kiwi', 'peach'\].*\['orange', 'kiwi', 'banana'\]"):
        evaluate.evaluate_checkpoint(out, other, tmp_path / "eval", toy_settings())


def test_dataset_missing_a_class_is_refused(tmp_path):
    folder = toy_dataset(tmp_path, {"orange": 4, "kiwi": 4})
    with pytest.raises(TrainingError, match=rf"dataset '{folder}'.*missing: \['banana'\]"):
        train_and_test(folder, toy_settings(), tmp_path / "out", photos(tmp_path / "test"), progress=False)


def test_dataset_with_an_empty_split_is_refused(tmp_path):
    folder = toy_dataset(tmp_path, {"orange": 4, "kiwi": 4, "banana": 1})
    with pytest.raises(TrainingError, match=r"no val images of class\(es\) \['banana'\].*generate more"):
        train_and_test(folder, toy_settings(), tmp_path / "out", photos(tmp_path / "test"), progress=False)


def test_dataset_with_deleted_images_is_refused(tmp_path):
    folder = toy_dataset(tmp_path, {name: 4 for name in CLASSES})
    for path in (folder / "kiwi").glob("*.png"): path.unlink()
    with pytest.raises(TrainingError, match=r"missing, e\.g\. '.*kiwi.*'; run the generate command again"):
        train_and_test(folder, toy_settings(), tmp_path / "out", photos(tmp_path / "test"), progress=False)


def test_test_photos_folder_missing_a_class_is_refused(tmp_path):
    photos(tmp_path, ["orange", "kiwi"])
    with pytest.raises(ValueError, match="banana"):
        run_photos(toy_settings(), tmp_path)


def test_corrupt_checkpoint_is_refused(run, tmp_path):
    out, _, test = run
    (tmp_path / "model.pt").write_bytes((out / "model.pt").read_bytes()[:3000])
    with pytest.raises(TrainingError, match=rf"'{tmp_path / 'model.pt'}' cannot be read.*corrupt or truncated"):
        evaluate.evaluate_checkpoint(tmp_path, test, tmp_path / "eval", toy_settings())
    (tmp_path / "model.pt").write_text("hello")
    with pytest.raises(TrainingError, match="corrupt"):
        batches.load_checkpoint(tmp_path / "model.pt")


def test_checkpoint_of_another_backbone_is_refused(run, tmp_path):
    out, _, _ = run
    payload = torch.load(out / "model.pt", weights_only=True)
    payload["backbone"] = "efficientnet_lite0"  # resnet18 weights labelled as another backbone
    torch.save(payload, tmp_path / "model.pt")
    with pytest.raises(TrainingError, match=r"says backbone 'efficientnet_lite0'.*its weights were made for resnet18") as refused:
        batches.load_checkpoint(tmp_path)
    assert len(str(refused.value)) < 400  # one line a person reads, not the list of every weight
    torch.save({"state_dict": payload["state_dict"]}, tmp_path / "plain.pt")
    with pytest.raises(TrainingError, match="not a fruit-synth model checkpoint"):
        batches.load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(TrainingError, match="no model checkpoint"):
        batches.load_checkpoint(tmp_path / "nowhere")


def test_resnet18_weights_missing_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ModelError) as error:
        imagenet_model("resnet18")
    message = str(error.value)
    assert str(tmp_path / "checkpoints" / RESNET18_FILE) in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message and "backbone=efficientnet_lite0" in message
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / RESNET18_FILE).write_bytes(b"truncated download")
    assert resnet18_weights() == tmp_path / "checkpoints" / RESNET18_FILE
    with pytest.raises(ModelError, match="failed the hash check"):  # checked by name and hash before torch reads it
        imagenet_model("resnet18")


@pytest.mark.parametrize("mode", ["finetune", "probe"])
def test_each_seed_trains_on_its_own_set(tmp_path, mode):
    "seeds_vary = dataset: seed k trains on folder k; the metrics name every folder; a count that fits no seed is refused."
    settings = toy_settings(seeds=2, train_mode=mode, input_size=0)
    folders = [generate(Swatches(), tmp_path / f"data{seed}", "swatches", {name: 8 for name in CLASSES},
                        toy_settings(seed=seed), jobs=1, progress=False) for seed in (0, 1)]
    assert (folders[0] / "manifest.jsonl").read_bytes() != (folders[1] / "manifest.jsonl").read_bytes()
    metrics = train_and_test(folders, settings, tmp_path / "out", photos(tmp_path / "test"), progress=False)
    assert metrics["dataset"]["folders"] == [str(folder) for folder in folders]
    assert [(s["seed"], s["train_set"]) for s in metrics["selected"]] == [(0, str(folders[0])), (1, str(folders[1]))]
    assert metrics["summary"]["test_accuracy"]["ci_over"] == "photos and seeds"
    with pytest.raises(ValueError, match="3 training sets for seeds = 2: give one set, or one per seed"):
        train_and_test(folders + folders[:1], settings, tmp_path / "out3", photos(tmp_path / "test"), progress=False)
    for path in (folders[1] / "kiwi").glob("*.png"): path.unlink()  # a later seed's lost images: found before any training
    with pytest.raises(ValueError, match=re.escape(str(folders[1]))):
        train_and_test(folders, settings, tmp_path / "out4", photos(tmp_path / "test"), progress=False)
