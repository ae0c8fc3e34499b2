"""The package as a user installs it: every import declared, and the wheel, installed in a fresh virtual environment
(no editable install, no checkout on the path), runs `fruit-synth init` and `fruit-synth report` from an empty folder."""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from conftest import ROOT

# Imported inside `try: ... except ImportError`, used only when present (Dask's dashboard).
OPTIONAL = {"bokeh"}


def _imports(tree: ast.AST) -> tuple[set[str], set[str]]:
    "Top-level names of the modules `tree` imports anywhere (functions too): (required, inside `except ImportError`)."
    required, optional = set(), set()
    guarded = {id(node) for t in ast.walk(tree) if isinstance(t, ast.Try)
               and any(isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in t.handlers)
               for stmt in t.body for node in ast.walk(stmt)}
    for node in ast.walk(tree):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                 [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
        for name in names: (optional if id(node) in guarded else required).add(name.split(".")[0])
    return required, optional


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_import_is_a_declared_dependency():
    "What the package and the experiment notebook it ships import is installed by `pip install fruit-synth`."
    required, optional = set(), set()
    sources = [path.read_text() for path in (ROOT / "fruit_synth").rglob("*.py")]
    notebook = json.loads((ROOT / "nbs" / "experiment.ipynb").read_text())
    sources += ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    for source in sources:
        found, maybe = _imports(ast.parse(source))
        required |= found
        optional |= maybe
    # an import guarded by `except ImportError` must be declared too, unless it is one of the known optional ones
    required = (required | optional - OPTIONAL) - set(sys.stdlib_module_names) - {"fruit_synth", "__future__"}
    declared = {_normal(re.split(r"[=<>!~\[ ;]", line)[0])
                for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    owners = packages_distributions()
    missing = {name: owners.get(name) for name in required if not {_normal(d) for d in owners.get(name, [name])} & declared}
    assert not missing, f"imported but not declared in pyproject.toml [project] dependencies: {missing}"


def _clean_env(venv: Path) -> dict:
    "An environment that sees the fresh venv only: no checkout on the path, no settings chosen for it."
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "FRUIT_SYNTH_SETTINGS", "PYTHONDONTWRITEBYTECODE")}
    return {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}", "HF_HUB_OFFLINE": "1"}


def _checkout_copy(folder: Path) -> Path:
    "The project's files as a fresh clone has them (tracked and new, not ignored), links kept as links."
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        source, target = ROOT / name, folder / name
        if not (source.exists() or source.is_symlink()): continue  # deleted in the working tree
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return folder


def test_the_wheel_installs_in_a_fresh_venv_and_runs_from_an_empty_folder(tmp_path, data):
    "The README's `pip install .` into a fresh venv, then `fruit-synth init` and the demo report from an empty folder."
    checkout = _checkout_copy(tmp_path / "checkout")  # builds write build/ and *.egg-info: never into the project
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "-w",
                            str(tmp_path / "dist"), "."], cwd=checkout, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    # setuptools' warnings (a data folder absent from the packages configuration, deprecated fields), but its note that
    # this machine's PYTHONDONTWRITEBYTECODE turns byte-compiling off
    warnings = [line for line in (build.stdout + build.stderr).splitlines() if re.search(r"warn|deprecat|absent", line, re.I)
                and "byte-compiling is disabled" not in line and "Location 'file:" not in line]
    assert not warnings, warnings
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = _clean_env(venv)
    run = lambda *command, cwd, timeout=900: subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True,
                                                            timeout=timeout)
    # the README's `pip install .`, in a copy of the checkout; the dependencies come from pyproject.toml's pins
    install = run("pip", "install", "--quiet", "--no-compile", ".", cwd=checkout)
    assert install.returncode == 0, install.stderr[-3000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    where = run("python", "-c", "import fruit_synth; print(fruit_synth.__file__)", cwd=empty)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr  # the installed copy, not the checkout
    init = run("fruit-synth", "init", cwd=empty)
    print(init.stdout, init.stderr)
    assert init.returncode == 0, init.stderr[-3000:]
    assert (empty / "settings.ini").is_file() and (empty / "photos" / "kiwi").is_dir() and (empty / "backgrounds").is_dir()
    assert "fruit-synth report --profile mine" in init.stdout and (empty / "explore.ipynb").is_file()
    again = run("fruit-synth", "init", cwd=empty)
    assert again.returncode == 2 and "never overwrites" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    # the demo profile as shipped; two variants keep the test short (the full demo report is `make report`)
    report = run("fruit-synth", "report", "--variants", "few_shot", "copy_paste", cwd=empty)
    print(report.stderr[-1500:])
    assert report.returncode == 0, report.stderr[-3000:]
    assert "(found up from the current folder)" in report.stderr and str(empty / "settings.ini") in report.stderr
    page = (empty / "report" / "index.html").read_text()
    assert "copy_paste" in page and "few_shot" in page
    assert all((empty / "report" / "runs" / name / "metrics.json").is_file() for name in ("few_shot", "copy_paste"))
