"""Screenshot of a rendered report's first screen, for the README: headless Chromium (Debian's), PNG, kept small.

    .venv/bin/python tools/screenshot.py report/index.html docs/grocery-report.png [--width 1200 --height 900]

The page is opened from disk as the browser test opens it; the picture is quantised to 256 colours so that it stays
under MAX_BYTES.
"""
from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

from PIL import Image

MAX_BYTES = 300_000
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]


def screenshot(page_file: Path, out: Path, width: int = 1200, height: int = 900) -> int:
    "Write the first screen of `page_file` to `out` as a palette PNG; return its size in bytes."
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium: sys.exit("tools/screenshot.py: needs Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(page_file.resolve().as_uri())
        page.wait_for_load_state("load")
        picture = page.screenshot(full_page=False)
        browser.close()
    image = Image.open(io.BytesIO(picture)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    if buffer.tell() > MAX_BYTES: sys.exit(f"tools/screenshot.py: {buffer.tell()} bytes, over {MAX_BYTES}: use a smaller --height")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buffer.getvalue())
    return buffer.tell()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=900)
    arguments = parser.parse_args()
    print(f"{arguments.out}: {screenshot(arguments.page, arguments.out, arguments.width, arguments.height)} bytes")
