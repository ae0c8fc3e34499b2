"""Every kind of file the tool writes and reads back, damaged every way (truncated, random bytes, a wrong JSON type,
duplicated lines), fed to the command that reads it: one line on stderr, exit 2, and nothing else on disk changed.
Caches are the exception by design: a damaged one is made again (the report's finished runs below, the probe's
feature cache in tests/test_hostile_files.py). Sweep files: tests/test_hostile_sweep.py."""
import random
import shutil
from pathlib import Path

import pytest

from conftest import ROOT
from fruit_synth.cli import main
from test_hostile_files import refused, small, snapshot, world  # noqa: F401 -- `world` is the fixture used below

CORRUPTIONS = ["truncated", "random bytes", "wrong JSON type", "duplicated lines"]


def corrupt(path: Path, how: str) -> None:
    "Damage `path` in place, the way `how` says."
    data = path.read_bytes()
    if how == "truncated": damaged = data[: len(data) // 3]  # mid-record (a settings.ini: mid-line, with no final newline)
    elif how == "random bytes": damaged = random.Random(len(data)).randbytes(max(len(data), 64))
    elif how == "wrong JSON type": damaged = b'["a list", "where an object or records belong"]\n'
    else:
        lines = data.splitlines(keepends=True)
        at = len(lines) // 3  # settings.ini: a line of a profile, twice
        damaged = b"".join(lines[:at + 2] + lines[at:]) if len(lines) > 3 else data + data
    assert damaged != data
    path.write_bytes(damaged)


@pytest.fixture(scope="module")
def trained(world: Path) -> Path:  # noqa: F811
    "A run folder fine-tuned (one epoch) on the world's copy-paste set: model.pt and metrics.json."
    run = world / "trained"
    assert main(["train", "--data", str(world / "pristine/copy_paste"), "--test", str(world / "photos"), "--out", str(run),
                 *small(world, "-p", "train_mode=finetune", "-p", "epochs_grid=1")]) == 0
    return run


@pytest.mark.parametrize("how", CORRUPTIONS)
@pytest.mark.parametrize("name", ["manifest.jsonl", "dataset.json"])
def test_train_refuses_a_damaged_dataset_file(capsys, world, tmp_path, name, how):  # noqa: F811
    dataset = Path(shutil.copytree(world / "pristine/copy_paste", tmp_path / "datasets/copy_paste"))
    corrupt(dataset / name, how)
    before = snapshot(world, tmp_path)
    line = refused(capsys, "train", "--data", dataset, "--test", world / "photos", "--out", tmp_path / "run", *small(world))
    assert name in line and "fruit-synth generate" in line, line
    assert snapshot(world, tmp_path) == before


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_evaluate_refuses_a_damaged_checkpoint(capsys, world, trained, tmp_path, how):  # noqa: F811
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    corrupt(run / "model.pt", how)
    before = snapshot(world, tmp_path)
    line = refused(capsys, "evaluate", "--model", run, "--test", world / "photos", "--out", tmp_path / "again", *small(world))
    assert "model.pt" in line, line
    assert snapshot(world, tmp_path) == before


@pytest.mark.parametrize("how", CORRUPTIONS)
@pytest.mark.parametrize("command", ["settings", "sources"])
def test_every_command_refuses_a_damaged_settings_file(capsys, world, tmp_path, command, how):  # noqa: F811
    settings = tmp_path / "settings.ini"
    shutil.copy(ROOT / "settings.ini", settings)
    corrupt(settings, how)
    before = snapshot(world, tmp_path)
    line = refused(capsys, command, "--settings", settings, "-p", f"work_dir={tmp_path / 'work'}")
    assert "settings" in line, line
    assert snapshot(world, tmp_path) == before


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_a_damaged_metrics_json_is_named_and_its_run_is_not_reused(world, trained, tmp_path, how):  # noqa: F811
    from fruit_synth.learn.evaluate import MetricsError, read_metrics
    from fruit_synth.study.report import _reusable
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    assert _reusable({"fingerprint": "f", "status": "ok"}, "f", run)
    corrupt(run / "metrics.json", how)
    with pytest.raises(MetricsError, match="metrics.json"): read_metrics(run / "metrics.json")
    before = snapshot(run)
    assert not _reusable({"fingerprint": "f", "status": "ok"}, "f", run)  # the report makes the run again
    assert snapshot(run) == before


@pytest.fixture(scope="module")
def swept(world: Path) -> Path:  # noqa: F811
    "A finished two-point sweep of the world (probe): sweep.json, sweep.csv, points/."
    folder = world / "swept"
    assert main(["sweep", "--vary", "n_per_class=4,6", "--variants", "copy_paste", "--seeds", "1", "--out", str(folder),
                 *small(world)]) == 0
    return folder


@pytest.mark.parametrize("how", CORRUPTIONS)
@pytest.mark.parametrize("name", ["sweep.json", "sweep.csv"])
def test_a_damaged_sweep_file_is_named_by_its_reader_and_the_sweep_command_repairs_it(capsys, world, swept, tmp_path, name,
                                                                                         how):  # noqa: F811
    from fruit_synth.study.sweep import SweepError, sweep_summary
    folder = Path(shutil.copytree(swept, tmp_path / "swept"))
    corrupt(folder / name, how)
    before = snapshot(folder)
    with pytest.raises(SweepError, match=name.replace(".", r"\.")): sweep_summary(folder)  # what the report reads
    assert snapshot(folder) == before
    # the same sweep again: its finished points are reused and the two files written anew
    assert main(["sweep", "--vary", "n_per_class=4,6", "--variants", "copy_paste", "--seeds", "1", "--out", str(folder),
                 *small(world)]) == 0
    assert len(sweep_summary(folder)["rows"]) == len(sweep_summary(swept)["rows"])
