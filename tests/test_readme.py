"""Every command the README prints is run by a test, as printed. Where each one runs:

- `make report`: the report fixture of tests/test_report.py, in a copy of the project with a small demo profile;
- `make test`: CI itself (`.ci/run`);
- the own-fruit walk (`pip install .` ... `fruit-synth report --profile mine`) and `fruit-synth run --variant ...`:
  tests/test_install.py, in a fresh virtual environment;
- the papermill command: tests/test_report.py (the experiment notebook documents the same command);
- the explorer, the environment's activation, the commands table and `make report PROFILE=grocery`: here."""
import json
import os
import re
import select
import shutil
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import CLI, ROOT, profile_section

README = (ROOT / "README.md").read_text()
# commands the README prints in its text rather than in a block, each run below or by the test named above
INLINE = ["source .venv/bin/activate", "fruit-synth run --variant few_shot -p epochs_grid=1", "make report PROFILE=grocery"]
# every line of every block in the README, and the test module that runs it
BLOCKS = {
    "make report": "test_report.py (the report fixture)",
    "make test": ".ci/run",
    "pip install .": "test_install.py",
    "fruit-synth init myfruit --classes apple,pear": "test_install.py",
    "cd myfruit": "test_install.py",
    "fruit-synth sources --profile mine": "test_install.py",
    "fruit-synth report --profile mine": "test_install.py",
    'papermill nbs/experiment.ipynb out.ipynb -p variant few_shot -p overrides "epochs_grid=1 seeds=1"': "test_report.py",
    "jupyter lab nbs/explore.ipynb": "test_readme.py",
}


def _block_lines() -> list[str]:
    return [line.strip() for block in re.findall(r"```\w*\n(.*?)```", README, re.S) for line in block.splitlines() if line.strip()]


def test_every_command_in_the_readme_is_one_the_tests_run():
    assert set(_block_lines()) == set(BLOCKS), set(_block_lines()) ^ set(BLOCKS)
    assert all(f"`{command}`" in README for command in INLINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_stays_short():
    assert len(README.splitlines()) <= 130


def test_the_papermill_command_is_the_one_the_experiment_notebook_documents():
    header = "".join(json.loads((ROOT / "nbs" / "experiment.ipynb").read_text())["cells"][0]["source"])
    command = next(line for line in BLOCKS if line.startswith("papermill "))
    assert command in header  # tests/test_report.py runs the header's command word for word


def test_the_environment_activates_as_printed():
    result = subprocess.run(["bash", "-c", f"{INLINE[0]} && command -v fruit-synth"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == str(ROOT / ".venv" / "bin" / "fruit-synth"), result


def test_the_grocery_report_command_runs_the_grocery_profile():
    "The command of the README's result table (a quarter of an hour: its run is the result itself, not a test)."
    result = subprocess.run(["make", "-n", *shlex.split(INLINE[2]).__getitem__(slice(1, None))], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and ".venv/bin/fruit-synth report --profile grocery" in result.stdout, result.stdout


def test_every_command_of_the_table_exists():
    names = re.findall(r"^\| `fruit-synth (\w+)", README, re.M)
    assert len(names) >= 10
    for name in names:
        result = subprocess.run([sys.executable, "-m", "fruit_synth.cli", name, "--help"], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, f"fruit-synth {name}: {result.stderr[-500:]}"


@pytest.mark.parametrize("folder", ["checkout", "init"])
def test_the_explorer_opens_in_jupyterlab_as_printed(tmp_path, folder):
    "`jupyter lab nbs/explore.ipynb` in the checkout, `jupyter lab explore.ipynb` in a folder `fruit-synth init` made."
    if folder == "checkout": cwd, command = ROOT, next(line for line in BLOCKS if line.startswith("jupyter lab"))
    else:
        cwd, command = tmp_path / "mine", "jupyter lab explore.ipynb"
        made = subprocess.run([sys.executable, "-m", "fruit_synth.cli", "init", str(cwd)], capture_output=True, text=True,
                              timeout=120)
        assert made.returncode == 0 and command in made.stdout, made.stderr
    # the test's own Jupyter configuration: no browser, allowed to run as root (CI runs as root), files in tmp_path
    config = tmp_path / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {"open_browser": False, "allow_root": True}}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen(shlex.split(command), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log, deadline, url = "", time.monotonic() + 120, None
    try:
        while time.monotonic() < deadline and url is None and server.poll() is None:
            if select.select([server.stdout], [], [], 1)[0]: log += server.stdout.readline()
            url = re.search(r"(http://127\.0\.0\.1:\d+)/lab\?token=(\w+)", log)
        assert url, log[-2000:]
        assert "No such file or directory" not in log, log[-2000:]
        # the notebook the command opens is served, and it is the explorer
        notebook = Path(shlex.split(command)[-1])
        address = f"{url.group(1)}/api/contents/{notebook.name}?token={url.group(2)}"
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the server is local: no proxy
        for attempt in range(30):  # the server prints its address a moment before it answers
            try:
                served = json.loads(direct.open(address, timeout=30).read())
                break
            except OSError as error:
                if attempt == 29: raise AssertionError(f"{address}: {error}\n{log[-3000:]}") from error
                time.sleep(1)
        assert served["type"] == "notebook" and "finished run(s)" in json.dumps(served["content"])
        assert f"Serving notebooks from local directory: {(cwd / notebook).parent}" in log, log[-2000:]
    finally:
        server.terminate()
        server.wait(timeout=30)


README_WALK = """pip install .
fruit-synth init myfruit --classes apple,pear
cd myfruit
fruit-synth sources --profile mine
fruit-synth report --profile mine"""


def _fill(folder: Path, data: Path, classes: dict[str, str], per_class: int) -> None:
    "Put shared photos where `fruit-synth init` says: test photos, cut-out photos on white, backgrounds."
    for mine, fruit in classes.items():
        for kind, source in (("photos", "photos"), ("cutouts", "white")):
            for photo in sorted((data / source / fruit).iterdir())[:per_class if kind == "photos" else 5]:
                shutil.copy(photo, folder / kind / mine / photo.name)
    for photo in sorted((data / "backgrounds").iterdir())[:12]: shutil.copy(photo, folder / "backgrounds" / photo.name)


def test_the_own_fruit_walk_runs_as_printed(tmp_path, data):
    """The README's walk (after `pip install .`, which tests/test_install.py runs in a fresh venv), as printed, with the
    checkout's `fruit-synth`; the user's files: shared photos of two fruits the walk calls apple and pear, and the
    profile made small for a test. Then the README's other way to rerun one variant."""
    assert f"```\n{README_WALK}\n```" in README
    env = {**os.environ, "PATH": f"{CLI.parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("FRUIT_SYNTH_SETTINGS", None)
    run = lambda line, cwd: subprocess.run(shlex.split(line), cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    walk = README_WALK.splitlines()
    made = run(walk[1], tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    folder = tmp_path / walk[2].split()[1]
    _fill(folder, data, {"apple": "orange", "pear": "kiwi"}, per_class=8)
    settings = (folder / "settings.ini").read_text()
    small = {"n_per_class": 10, "seeds": 1, "input_size": 128, "test_per_class": 8, "variants": "few_shot, copy_paste"}
    (folder / "settings.ini").write_text(profile_section(settings, "mine", small))
    for line in walk[3:]:
        step = run(line, folder)
        assert step.returncode == 0, f"{line}: {step.stderr[-3000:]}"
    text = (folder / "report" / "index.html").read_text()
    assert "apple" in text and "pear" in text and not re.search(r"\b(orange|peach|kiwi|tomato|banana)\b", text)
    # `fruit-synth run --variant few_shot -p epochs_grid=1`, as printed, in the same folder (demo profile: its own world)
    rerun = run(INLINE[1], folder)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert json.loads((folder / "report" / "runs" / "few_shot" / "metrics.json").read_text())["epochs_grid"] == [1]
