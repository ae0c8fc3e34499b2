"Shared fixtures: the project root, the real photos beside the checkout, and a way to run the CLI."
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("FRUIT_SYNTH_DATA", ROOT.parent / "shared" / "data")).resolve()
CLI = Path(sys.executable).parent / "fruit-synth"


@pytest.fixture(scope="session")
def data() -> Path:
    "The real photos kept beside the checkout (../shared/data or $FRUIT_SYNTH_DATA); CI has them too."
    assert (DATA / "photos").is_dir(), f"real photos not found at {DATA}: set FRUIT_SYNTH_DATA"
    return DATA


def run_cli(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    "Run the installed `fruit-synth` command and capture its output."
    return subprocess.run([str(CLI), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
