"Shared fixtures: the project root, the real photos beside the checkout, a way to run the CLI, and the toy generator."
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# The tests never reach a model hub, whatever network the machine has: the Hugging Face libraries stay offline, and the
# torch hub cache (where ResNet18's weights would be looked for) is an empty folder of the test session's own.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="fruit-synth-torch-home-")

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("FRUIT_SYNTH_DATA", ROOT.parent / "shared" / "data")).resolve()
CLI = Path(sys.executable).parent / "fruit-synth"


@pytest.fixture(scope="session")
def data() -> Path:
    "The real photos kept beside the checkout (../shared/data or $FRUIT_SYNTH_DATA); CI has them too."
    assert (DATA / "photos").is_dir(), f"real photos not found at {DATA}: set FRUIT_SYNTH_DATA"
    return DATA


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory) -> Path:
    "One demo-world folder for the session: the first test that runs the demo profile with it builds the world there."
    return tmp_path_factory.mktemp("demo-world")


def run_cli(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    "Run the installed `fruit-synth` command and capture its output."
    return subprocess.run([str(CLI), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def profile_section(settings: str, profile: str, values: dict) -> str:
    "`settings` (the text of a settings.ini) with `values` set in the section `profile`, comments and order kept."
    lines, out, section, done = settings.splitlines(), [], None, set()
    for line in lines + ["[end]"]:
        if line.startswith("["):
            if section == profile: out += [f"{key} = {value}" for key, value in values.items() if key not in done]
            section = line.strip()[1:-1]
        key = line.split("=", 1)[0].strip()
        if section == profile and "=" in line and not line.lstrip().startswith("#") and key in values:
            line = f"{key} = {values[key]}"
            done.add(key)
        if line != "[end]": out.append(line)
    return "\n".join(out) + "\n"


def cli(capsys, *argv) -> tuple[int, str, str]:
    "Run `fruit-synth ARGV` in this process (its `main`); exit status, stdout, stderr."
    from fruit_synth.cli import main
    capsys.readouterr()
    try: status = main([str(a) for a in argv])
    except SystemExit as exit: status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


class Swatches:
    "The tests' one toy generator: a flat colour per class plus noise, a dataset that trains in seconds."
    colours = {"orange": (240, 140, 20), "kiwi": (120, 100, 50), "banana": (250, 220, 60)}

    def fingerprint(self) -> str: return "swatches-test-1"

    def make(self, name, index, rng):
        pixels = np.clip(np.array(self.colours[name]) + rng.normal(0, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
        return Image.fromarray(pixels), {}


@pytest.fixture
def toy_generator() -> Swatches:
    "The toy generator (see `Swatches`)."
    return Swatches()
