"""Numbers that pass a type check but cannot run, and messages that must send the user the right way: each case ends in
one line on stderr, exit 2, naming the setting, file or option and what fixes it."""
import subprocess
from pathlib import Path

import pytest

from conftest import CLI, ROOT, run_cli


def one_error(result: subprocess.CompletedProcess) -> str:
    "The one error line of a refused command (exit 2, no traceback)."
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


@pytest.mark.parametrize("key", ["n_per_class", "test_per_class", "masks_per_class", "hybrid_from_copy_paste", "cache_mb"])
def test_a_count_too_large_to_run_is_refused_before_anything_runs(key, tmp_path):
    line = one_error(run_cli("settings", "-p", f"{key}=9223372036854775807"))
    assert key in line and "expected an integer in [" in line


@pytest.mark.parametrize("jobs", ["0", "-1", "30"])
def test_a_worker_count_that_cannot_be_is_refused(jobs, tmp_path):
    line = one_error(run_cli("report", "--jobs", jobs, "-p", f"work_dir={tmp_path}"))
    assert "--jobs" in line and not any(tmp_path.iterdir())


def test_evaluate_out_the_root_folder_is_refused(tmp_path):
    line = one_error(run_cli("evaluate", "--model", tmp_path / "none", "--test", tmp_path, "--out", "/"))
    assert "--out '/'" in line and "root folder" in line


def test_a_settings_file_without_profiles_says_how_to_make_one(tmp_path):
    empty = tmp_path / "settings.ini"
    empty.write_text("# Experiment settings for fruit-synth\n")
    line = one_error(run_cli("settings", "--settings", empty))
    assert "no profile [demo]" in line and "fruit-synth init" in line and "profiles are: " not in line


def test_a_huge_settings_value_is_not_echoed_whole(tmp_path):
    "A 2 MB line of settings.ini that is wrong: the error names it in one short line."
    settings = (ROOT / "settings.ini").read_text().replace("\nn_per_class = 32\n", "\nn_per_class = " + "9" * 2_000_000 + "\n")
    (tmp_path / "settings.ini").write_text(settings)
    line = one_error(run_cli("settings", "--settings", tmp_path / "settings.ini"))
    assert "n_per_class" in line and "characters cut" in line and len(line) < 1600


@pytest.mark.parametrize("variant", ["nosuch", ""])
def test_run_of_an_unknown_or_empty_variant_blames_the_command_line(variant, tmp_path):
    line = one_error(run_cli("run", "--variant", variant, "-p", f"work_dir={tmp_path}"))
    assert f"variant '{variant}' given on the command line" in line and "settings.ini" not in line
    assert not any(tmp_path.iterdir())


def test_a_suggested_command_names_the_settings_file_that_was_found(tmp_path):
    "Pasted in another folder, the suggestion still reads the same settings and writes where it said."
    made = subprocess.run([str(CLI), "init", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    line = one_error(run_cli("train", "--data", "missing", "--out", "o", cwd=tmp_path))
    assert f"--settings {tmp_path / 'settings.ini'}" in line


def test_work_dir_takes_the_demo_world_along(tmp_path):
    result = run_cli("settings", "-p", f"work_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    demo_dir = next(line for line in result.stdout.splitlines() if line.startswith("demo_dir"))
    assert demo_dir.split("=", 1)[1].split()[0] == str(tmp_path / "demo-world")
    assert str(ROOT / "work") not in demo_dir


def test_a_file_size_limit_is_one_line_naming_the_folder(tmp_path):
    out = tmp_path / "world"
    result = subprocess.run(["bash", "-c", f"ulimit -f 4; exec {CLI} demo --out {out}"], capture_output=True, text=True,
                            timeout=300)
    line = one_error(result)
    assert "file size limit" in line and "ulimit -f" in line and str(out) in line


def test_a_file_that_cannot_be_read_is_not_blamed_on_an_output_folder(tmp_path, monkeypatch):
    "A photo the user cannot read: the message says to make it readable, not to choose a folder one can write to."
    import os
    from fruit_synth import cli
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"x")
    monkeypatch.setattr(cli.os, "access", lambda path, mode: mode != os.R_OK)  # as a user without read permission (CI is root)
    line = cli.os_error_line(PermissionError(13, "Permission denied", str(photo)))
    assert f"cannot read '{photo}'" in line and "chmod" in line and "write to" not in line
