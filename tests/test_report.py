"""The report end to end on a small demo run: stitched page, browser check in headless Chromium, the explorer notebook,
and the papermill command the experiment notebook documents, run exactly as printed."""
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import papermill
import pytest

from conftest import ROOT, profile_section

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VARIANTS = ["few_shot", "copy_paste", "diffusion", "hybrid"]


def project_copy(folder: Path, demo: dict) -> Path:
    "A folder that works as the checkout does (its Makefile, environment and notebooks) with the demo profile's `demo` values."
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("Makefile", "pyproject.toml", ".venv", "nbs"): (folder / name).symlink_to(ROOT / name)
    (folder / "settings.ini").write_text(profile_section((ROOT / "settings.ini").read_text(), "demo", demo))
    return folder


@pytest.fixture(scope="module")
def report(tmp_path_factory, demo_world) -> Path:
    """A small demo report made by the README's `make report`, as printed, in a copy of the project whose demo profile is
    small: two variants train, diffusion and hybrid are skipped for want of weights."""
    base = tmp_path_factory.mktemp("report")
    from fruit_synth.data.demo import ensure_demo_world
    ensure_demo_world(demo_world)  # the session's demo world, built here when no test built it before
    pair = base / "pair"  # a second test domain that holds two of the five classes
    for name in ("orange", "kiwi"):
        (pair / name).mkdir(parents=True)
        for photo in sorted((demo_world / "real" / name).iterdir())[-6:]:
            shutil.copy(photo, pair / name / photo.name)
    small = {"work_dir": base / "work", "demo_dir": demo_world, "n_per_class": 12, "test_per_class": 12, "epochs_grid": 1,
             "hybrid_from_copy_paste": 6, "hybrid_from_diffusion": 6, "variants": ", ".join(VARIANTS),
             "test_domains": f"pair={pair}", "recommended": "copy_paste"}
    project = project_copy(base / "project", small)
    env = {key: value for key, value in os.environ.items() if key not in ("FRUIT_SYNTH_SETTINGS", "MAKEFLAGS", "MFLAGS")}
    # the copy shares the project's .venv: were it out of date, `make report` would reinstall the project from the copy
    stamp = (ROOT / ".venv" / ".installed").read_text().strip() if (ROOT / ".venv" / ".installed").is_file() else ""
    assert stamp == hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest(), \
        "the environment was built from another pyproject.toml: run `make env` first"
    make = lambda: subprocess.run(["make", "report"], cwd=project, env=env, capture_output=True, text=True, timeout=900)
    result = make()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pip install" not in result.stdout, "make report rebuilt the environment: run `make env` first"
    assert "open report/index.html" in result.stdout
    for noise in ("without encryption", "Unable to parse line", "Passed unknown parameter"):
        assert noise not in result.stderr, f"the report prints {noise!r}: {result.stderr[-2000:]}"
    assert "report: where the time went" in result.stderr and "variant copy_paste" in result.stderr
    assert "report: diffusion: skipped before its notebook: Stable Diffusion weights" in result.stderr
    # a description-only setting changed: every run is reused (settings.ROLES)
    described = {**small, "protocol": "described otherwise: nothing a run computes changed"}
    (project / "settings.ini").write_text(profile_section((ROOT / "settings.ini").read_text(), "demo", described))
    second = make()
    assert second.returncode == 0 and "copy_paste: unchanged, reusing" in second.stderr
    assert "few_shot: unchanged, reusing" in second.stderr and "running the experiment notebook" not in second.stderr
    return project / "report"


def test_the_page_has_both_tables_the_skips_and_no_external_address(report: Path):
    text = (report / "index.html").read_text()
    assert "Demo world." in text
    for split in ("val", "test"):
        table = re.search(rf'<table class="results" data-split="{split}">(.*?)</table>', text, re.S).group(1)
        assert re.findall(r"<td>(\w+)</td>", table)[:1] and table.count("<tr>") == 1 + 2  # header + few_shot + copy_paste
    assert "diffusion</strong> — skipped: " in text and "sd_model" in text
    assert "hybrid</strong> — skipped: " in text
    assert text.count("(found before its notebook started)") == 2  # no kernel started for either: `variants.unmakeable`
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", text)
    assert "On the first test domain alone, 60 demo-world test photos" in text  # after the recommended set's sentence
    assert text.count('<tr class="chance"><td>chance (5 classes)</td>') == 2 and "± 0.0" not in text  # one seed: no spread
    assert "Leakage check" in text and "Where the time went" in text and "Training recipe of each run" in text
    sources = re.findall(r'(?:src|href)="([^"#]+)"', text)
    assert sources and all((report / src).is_file() for src in sources), [s for s in sources if not (report / s).is_file()]
    assert text.count("Reused: made on") == 2  # the second report reused both runs and says from when
    assert "<td>reused</td>" in text  # and its time table says the runs were reused, not trained again
    # the studies page: docs/results.md, rendered beside the report and linked from it
    assert 'href="results.html"' in text
    title = next(line for line in (ROOT / "docs" / "results.md").read_text().splitlines() if line.startswith("# "))[2:]
    assert f"<h1>{title}</h1>" in (report / "results.html").read_text()


def test_the_page_and_summary_give_each_test_domain(report: Path):
    text = (report / "index.html").read_text()
    summary = json.loads((report / "summary.json").read_text())
    assert summary["recommended"] == "copy_paste" and list(summary["domains"]) == ["real", "pair"]
    for variant in ("few_shot", "copy_paste"):
        metrics = json.loads((report / "runs" / variant / "metrics.json").read_text())
        scores = summary["variants"][variant]["domains"]
        assert scores["real"]["accuracy"] == round(metrics["summary"]["test_accuracy"]["mean"], 4)
        assert scores["pair"]["accuracy"] == round(metrics["domains"]["pair"]["summary"]["test_accuracy"]["mean"], 4)
        assert scores["pair"]["classes"] == ["orange", "kiwi"] and scores["pair"]["photos"] == metrics["domains"]["pair"]["images"]
        assert 8 <= scores["pair"]["photos"] <= 12  # the 12 copied, less any the leakage check finds near a cut-out's photo
    assert summary["variants"]["diffusion"]["status"] == "skipped"
    assert '<table class="results" data-split="domains">' in text
    assert re.search(r'<p class="answer">The profile&#39;s recommended training set, copy_paste', text)
    # neither domain is among the photos any recorded study scored on, and the page says so for each
    assert "real: these 60 photos took no part in choosing any setting" in text
    assert re.search(r"pair: these \d+ photos took no part in choosing any setting", text)


def test_the_page_in_a_browser(report: Path):
    if not CHROMIUM:  # `make test` installs it where it can (root and apt-get); CI must have it
        assert not os.environ.get("CI"), "the browser check needs Debian's chromium under CI: apt-get install chromium"
        pytest.skip("no chromium here, and no root to install it: apt-get install chromium to run the browser check")
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
        assert rows == [2, 2, 2]  # each domain's accuracy, then the first domain's validation and test tables
        links = page.eval_on_selector_all("a[href$='experiment.html']", "links => links.map(a => a.getAttribute('href'))")
        assert len(links) == 2 and all((report / link).is_file() for link in links), links  # the two that trained
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


def _documented_command() -> str:
    "The papermill command in the experiment notebook's header."
    header = "".join(json.loads((ROOT / "nbs/experiment.ipynb").read_text())["cells"][0]["source"])
    commands = [line.strip() for line in header.splitlines() if line.strip().startswith("papermill ")]
    assert len(commands) == 1, f"expected one papermill command in the experiment notebook's header, found {commands}"
    return commands[0]


def test_the_documented_papermill_command_works_as_printed(report: Path, tmp_path: Path, demo_world: Path):
    "Run the header's command word for word in a copy of the project folder whose demo world is the report's."
    command = _documented_command()
    (tmp_path / "nbs").symlink_to(ROOT / "nbs")
    settings = (ROOT / "settings.ini").read_text()
    settings = re.sub(r"(?m)^demo_dir =.*$", f"demo_dir = {demo_world}", settings)
    (tmp_path / "settings.ini").write_text(settings)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("FRUIT_SYNTH_SETTINGS", None)
    result = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Unable to parse line" not in result.stderr and "Passed unknown parameter" not in result.stderr
    out = json.loads((tmp_path / shlex.split(command)[2]).read_text())
    text = json.dumps(out["cells"])
    assert "test (real photos)" in text and "epochs_grid" in text
    metrics = json.loads(next((tmp_path / "report" / "runs").glob("*/metrics.json")).read_text())
    assert metrics["epochs_grid"] == [1] and len(metrics["summary"]["epochs_chosen"]) == 1  # the overrides took effect
