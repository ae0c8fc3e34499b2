"""real_mode = finetune: train on the generated set, then on exactly the k real photos per class; mix mode as before."""
import json
from pathlib import Path

import pytest
import torch

from fruit_synth.learn import train
from fruit_synth.learn.run import train_and_test
from fruit_synth.generate.datasets import load_dataset, write_with_real
from test_training import CLASSES, photos, toy_dataset, toy_settings

K = 2 # real photos per class


def plus_real(root: Path, mode: str) -> Path:
    "A toy generated set (8 per class) plus K real 'photos' per class, written as `mode` writes it."
    base = load_dataset(toy_dataset(root / "generated", {name: 8 for name in CLASSES}))
    real = photos(root / "real", per_class=K)
    return write_with_real(root / "copy_paste_plus_real", "copy_paste_plus_real", base, None, real, toy_settings(real_mode=mode))


@pytest.fixture
def spies(monkeypatch) -> dict:
    "Record the training files of each first-stage run and of each second stage, and whether the second stage changed the model."
    seen = {"first": [], "second": [], "changed": []}
    train_run, fit_real = train.train_run, train.fit_real
    def first(settings, classes, split, *args, **kwargs):
        seen["first"].append([path.name for path in split.files])
        return train_run(settings, classes, split, *args, **kwargs)
    def second(model, real, *args, **kwargs):
        before = [tensor.clone() for tensor in model.state_dict().values()]
        seen["second"].append(sorted((real.files[i].parent.name, real.files[i].name) for i in range(len(real.files))))
        rows = fit_real(model, real, *args, **kwargs)
        seen["changed"].append(any(not torch.equal(a, b.cpu()) for a, b in zip(before, model.state_dict().values())))
        return rows
    monkeypatch.setattr(train, "train_run", first)
    monkeypatch.setattr(train, "fit_real", second)
    return seen


def test_finetune_trains_on_exactly_the_k_real_photos_after_the_generated_set(tmp_path, spies):
    folder = plus_real(tmp_path, "finetune")
    settings = toy_settings(real_mode="finetune", real_epochs=2, real_lr=1e-3)
    metrics = train_and_test(folder, settings, tmp_path / "out", photos(tmp_path / "test"), progress=False)
    assert spies["first"] and all(not name.startswith("real-") for files in spies["first"] for name in files)  # generated only
    wanted = sorted((name, f"real-{i:03d}.jpg") for name in CLASSES for i in range(K))
    assert spies["second"] == [wanted] and spies["changed"] == [True]  # once, on the K photos per class, and it trains
    history = metrics["selected"] and next(run for run in metrics["runs"] if run["selected"])["history"]
    assert [row.get("stage") for row in history] == [None, "real", "real"] and [row["epoch"] for row in history] == [1, 2, 3]
    recipe = json.loads((tmp_path / "out/metrics.json").read_text())["recipe"]
    assert {key: recipe[key] for key in ("real_mode", "real_per_class", "real_epochs", "real_lr")} == {
        "real_mode": "finetune", "real_per_class": K, "real_epochs": 2, "real_lr": 1e-3}
    assert metrics["selected"][0]["real_stage"]["photos"] == K * len(CLASSES)


def test_mix_mode_trains_once_on_generated_and_repeated_real_photos(tmp_path, spies):
    folder = plus_real(tmp_path, "mix")
    metrics = train_and_test(folder, toy_settings(real_mode="mix"), tmp_path / "out", photos(tmp_path / "test"), progress=False)
    manifest = [r for r in load_dataset(folder).records if r["split"] == "train"]
    assert sorted(spies["first"][0]) == sorted(Path(r["file"]).name for r in manifest)  # every copy of every real photo
    assert {name for name in spies["first"][0] if name.startswith("real-")} == {f"real-{i:03d}.jpg" for i in range(K)}
    assert spies["second"] == []  # no second stage
    assert all("stage" not in row for run in metrics["runs"] for row in run["history"])
    assert metrics["recipe"]["real_mode"] == "mix" and "real_epochs" not in metrics["recipe"]


def test_finetune_without_real_photos_skips_the_stage_and_says_so(tmp_path, spies, capsys):
    folder = toy_dataset(tmp_path / "generated", {name: 8 for name in CLASSES})
    metrics = train_and_test(folder, toy_settings(real_mode="finetune"), tmp_path / "out", photos(tmp_path / "test"))
    assert spies["second"] == [] and metrics["recipe"]["real_stage"].startswith("skipped: the dataset holds no real photos")
    assert "second stage skipped" in capsys.readouterr().err
