"""The report end to end on a small demo run: stitched page, browser check in headless Chromium, the explorer notebook."""
import json
import re
import shutil
from pathlib import Path

import papermill
import pytest

from conftest import ROOT, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VARIANTS = ["few_shot", "copy_paste", "diffusion", "hybrid"]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    "A small demo report: two variants train, diffusion and hybrid are skipped for want of weights."
    base = tmp_path_factory.mktemp("report")
    small = ["-p", f"work_dir={base / 'work'}", "-p", f"demo_dir={base / 'demo-world'}", "-p", "n_per_class=12",
             "-p", "test_per_class=12", "-p", "epochs_grid=1", "-p", "hybrid_from_copy_paste=6", "-p", "hybrid_from_diffusion=6"]
    result = run_cli("report", "--out", base / "report", "--variants", *VARIANTS, *small)
    assert result.returncode == 0, result.stderr[-3000:]
    second = run_cli("report", "--out", base / "report", "--variants", *VARIANTS, *small)
    assert second.returncode == 0 and "copy_paste: unchanged, reusing" in second.stderr
    return base / "report"


def test_the_page_has_both_tables_the_skips_and_no_external_address(report: Path):
    text = (report / "index.html").read_text()
    assert "Demo world." in text
    for split in ("val", "test"):
        table = re.search(rf'<table class="results" data-split="{split}">(.*?)</table>', text, re.S).group(1)
        assert re.findall(r"<td>(\w+)</td>", table)[:1] and table.count("<tr>") == 1 + 2  # header + few_shot + copy_paste
    assert "diffusion</strong> — skipped: " in text and "sd_model" in text
    assert "hybrid</strong> — skipped: " in text
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", text)
    metrics = json.loads((report / "runs/copy_paste/metrics.json").read_text())
    assert 0 <= metrics["summary"]["test_accuracy"]["mean"] <= 1


def test_the_page_in_a_browser(report: Path):
    assert CHROMIUM, "the browser check needs Debian's chromium: apt-get install chromium (.ci/run does it)"
    from playwright.sync_api import sync_playwright
    errors = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto((report / "index.html").as_uri())
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all("img", "images => images.map(i => [i.getAttribute('src'), i.naturalWidth])")
        assert widths and all(width > 0 for _, width in widths), [src for src, width in widths if width == 0]
        rows = page.eval_on_selector_all("table.results", "tables => tables.map(t => t.querySelectorAll('tbody tr').length)")
        assert rows == [2, 2]
        links = page.eval_on_selector_all("a[href$='experiment.html']", "links => links.map(a => a.getAttribute('href'))")
        assert len(links) == 4 and all((report / link).is_file() for link in links), links
        page.screenshot(path=str(report / "screenshot.png"), full_page=False)
        page.goto((report / links[0]).as_uri())
        page.wait_for_load_state("load")
        browser.close()
    assert errors == []


def test_the_explorer_notebook_runs_headless(report: Path, tmp_path: Path):
    out = tmp_path / "explore.ipynb"
    papermill.execute_notebook(str(ROOT / "nbs/explore.ipynb"), str(out), parameters={"report_dir": str(report)},
                               cwd=str(ROOT / "nbs"), progress_bar=False, kernel_name="python3")
    outputs = json.loads(out.read_text())["cells"]
    text = json.dumps(outputs)
    assert "2 finished run(s)" in text and "application/vnd.jupyter.widget-view+json" in text
