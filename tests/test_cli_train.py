"""`fruit-synth train` and `fruit-synth evaluate` on a small few-shot set of the real photos."""
import json
import shutil
from pathlib import Path

from conftest import run_cli


def test_train_then_evaluate_a_kept_model(tmp_path: Path, data: Path):
    settings = ["--profile", "grocery", "-p", f"work_dir={tmp_path / 'work'}", "-p", "epochs_grid=1", "-p", "image_size=64",
                "-p", "input_size=0", "-p", "head_epochs=0", "-p", "train_mode=finetune"]  # a kept model: fine-tuning writes model.pt
    made = run_cli("generate", "few-shot", "--out", tmp_path / "datasets", *settings)
    assert made.returncode == 0, made.stderr
    trained = run_cli("train", "--data", tmp_path / "datasets/few_shot", "--out", tmp_path / "run", *settings)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "test accuracy" in trained.stdout and "95% CI" in trained.stdout
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["test"]["images"] == 5 * 37 and (tmp_path / "run/model.pt").is_file()
    web = metrics["domains"]["web"]  # the grocery profile's second domain, fine-tuned models tested on it too
    assert web["images"] == 240 and web["classes"] == ["orange", "kiwi", "tomato", "banana"]
    assert web["selected"][0]["test"]["over_classes"] == web["classes"] and (tmp_path / "run/predictions-web.csv").is_file()
    assert web["domain_gap"]["kid"]["size"] > 0
    again = run_cli("evaluate", "--model", tmp_path / "run", "--test", data / "photos", "--out", tmp_path / "again", *settings)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((tmp_path / "again/evaluation.json").read_text())["test"]["images"] == 245
    partial = tmp_path / "partial"
    for name in ["orange", "peach", "kiwi", "tomato"]: shutil.copytree(data / "photos" / name, partial / name)
    missing = run_cli("evaluate", "--model", tmp_path / "run", "--test", partial, "--out", tmp_path / "x", *settings)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and "banana" in missing.stderr
