"""Execute notebooks in place and keep their outputs, so a reader sees the pictures on a code host without running anything.

    python tools/execute_notebooks.py                   # every nbs/<layer>/*.ipynb (not experiment and explore)
    python tools/execute_notebooks.py nbs/learn/02_evaluate.ipynb nbs/study/03_report.ipynb

Each notebook runs top to bottom in a fresh kernel (cwd its folder), `#| slow` cells included, as `make test` runs them.
Pictures are made small before the notebook is written back: PNG outputs wider than MAX_WIDTH pixels are scaled
down, and any picture without transparency that is smaller as JPEG (quality JPEG_QUALITY) is stored as JPEG.
Long text outputs keep their last MAX_TEXT characters. Paths of this machine in outputs (the checkout, the home and
temporary folders) are written as <project>, ~ and <tmp>. A notebook that fails is left unchanged and named at the end.

    python tools/execute_notebooks.py --paths-only      # only rewrite the machine's paths in the outputs kept
"""
from __future__ import annotations

import argparse
import base64
import io
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from PIL import Image

from fruit_synth.study.report import IpcKernelManager

ROOT = Path(__file__).resolve().parent.parent
MAX_WIDTH, JPEG_QUALITY, MAX_TEXT = 1000, 80, 4000


def small_picture(data: str) -> tuple[str, str]:
    "A base64 PNG as (mime type, base64 data): scaled to MAX_WIDTH and stored as JPEG when that is smaller and opaque."
    raw = base64.b64decode(data)
    image = Image.open(io.BytesIO(raw))
    image.load()
    if image.width > MAX_WIDTH:
        image = image.resize((MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)), Image.Resampling.LANCZOS)
    candidates = {"image/png": raw if image.size == Image.open(io.BytesIO(raw)).size else _encode(image, "PNG")}
    if image.mode not in ("RGBA", "LA", "P") or image.getextrema()[-1][0] == 255:
        candidates["image/jpeg"] = _encode(image.convert("RGB"), "JPEG")
    mime = min(candidates, key=lambda key: len(candidates[key]))
    return mime, base64.b64encode(candidates[mime]).decode()


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": JPEG_QUALITY, "optimize": True} if fmt == "JPEG" else {"optimize": True}))
    return buffer.getvalue()


def compress_outputs(notebook: nbformat.NotebookNode) -> None:
    "Make every picture small and trim long text outputs, in place."
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                mime, encoded = small_picture(data.pop("image/png"))
                data[mime] = encoded
                output.get("metadata", {}).pop("image/png", None)
            if output.get("output_type") == "stream" and len(output.get("text", "")) > MAX_TEXT:
                output["text"] = "[... earlier output trimmed ...]\n" + output["text"][-MAX_TEXT:]
            if isinstance(data.get("text/plain"), str) and len(data["text/plain"]) > MAX_TEXT:
                data["text/plain"] = data["text/plain"][:MAX_TEXT] + "\n[... trimmed ...]"


def local_paths() -> list[tuple[str, str]]:
    "This machine's folders as they may appear in outputs, longest first, and what they are written as."
    folders = {str(ROOT): "<project>", str(ROOT.parent): "<project>/..", str(Path.home()): "~",
               str(Path(tempfile.gettempdir()).resolve()): "<tmp>", "/tmp": "<tmp>"}
    return sorted(folders.items(), key=lambda item: -len(item[0]))


def hide_local_paths(notebook: nbformat.NotebookNode) -> int:
    "Write this machine's paths in every output as <project>, ~ or <tmp>, in place; return how many were rewritten."
    pattern = re.compile("|".join(r"(?<![\w.~<>/-])" + re.escape(folder) + r"(?=[/\\'\" \n`),:;]|$)" for folder, _ in local_paths()))
    names = dict(local_paths())
    count = 0
    def scrub(value):
        nonlocal count
        if isinstance(value, str):
            new, n = pattern.subn(lambda match: names[match.group(0)], value)
            count += n
            return new
        if isinstance(value, list): return [scrub(item) for item in value]
        if isinstance(value, dict): return {key: scrub(item) if not key.startswith("image/") else item for key, item in value.items()}
        return value
    for cell in notebook.cells:
        if "outputs" in cell: cell.outputs = [nbformat.from_dict(scrub(dict(output))) for output in cell.outputs]
    return count


def is_ablation(cell) -> bool:
    "A cell flagged `#| ablation`: half an hour of real-photo runs, executed by `make ablation` only."
    return cell.cell_type == "code" and any(line.strip().replace(" ", "") == "#|ablation" for line in cell.source.splitlines()[:3])


def execute(path: Path, timeout: int = 3600, ablation: bool | set[str] = False) -> float:
    """Run `path` top to bottom in a fresh kernel and write it back with small outputs; return the seconds it took.
    Cells flagged `#| ablation` run only with `ablation` (True: all of them; a set: the cells of those ids); the others
    keep the outputs they have."""
    start = time.perf_counter()
    notebook = nbformat.read(path, as_version=4)
    chosen = (lambda cell: True) if ablation is True else (lambda cell: cell.id in (ablation or set()))
    kept = {cell.id: cell for cell in notebook.cells if is_ablation(cell) and not chosen(cell)}
    runnable = nbformat.from_dict({**notebook, "cells": [cell for cell in notebook.cells if cell.id not in kept]})
    client = NotebookClient(runnable, timeout=timeout, kernel_name="python3", kernel_manager_class=IpcKernelManager,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    executed = {cell.id: cell for cell in runnable.cells}
    notebook.cells = [kept.get(cell.id) or executed[cell.id] for cell in notebook.cells]
    compress_outputs(notebook)
    hide_local_paths(notebook)
    nbformat.write(notebook, path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: every nbs/<layer>/*.ipynb; not experiment and explore)")
    parser.add_argument("--ablation", action="store_true", help="also run the cells flagged `#| ablation` (about an hour)")
    parser.add_argument("--ablation-cells", default="", metavar="ID,ID", help="run only these `#| ablation` cells (by cell id)")
    parser.add_argument("--paths-only", action="store_true", help="run nothing: only rewrite this machine's paths in the outputs")
    args = parser.parse_args(argv)
    if args.paths_only:
        for path in args.notebooks or sorted((ROOT / "nbs").rglob("*.ipynb")):
            notebook = nbformat.read(path, as_version=4)
            if count := hide_local_paths(notebook):
                nbformat.write(notebook, path)
                print(f"{path}: {count} path(s) rewritten")
        return 0
    ablation = True if args.ablation else {cell for cell in args.ablation_cells.split(",") if cell}
    layers = ("core", "data", "generate", "learn", "study", "cli")  # bottom to top: a notebook's layer is run before its users
    paths = args.notebooks or [path for layer in layers for path in sorted((ROOT / "nbs" / layer).glob("*.ipynb"))]
    failed = []
    for path in paths:
        try:
            seconds = execute(path.resolve(), ablation=ablation)
            print(f"{path}: executed in {seconds:.0f} s, {path.stat().st_size / 1e6:.2f} MB with outputs", flush=True)
        except CellExecutionError as error:
            failed.append(path)
            print(f"{path}: FAILED, left unchanged: {str(error).strip().splitlines()[-1][:300]}", file=sys.stderr, flush=True)
    if failed: print(f"{len(failed)} notebook(s) failed: {', '.join(map(str, failed))}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
