"""Hostile input to `fruit-synth sweep` and `fruit-synth run --out`: a varied setting reaches every run of the sweep or is
refused up front in one line, and neither command writes over files it did not write, nor into a dataset or training
folder; a second sweep on the same folders waits for the first or stops at once, naming it."""
import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CLI, ROOT, run_cli
from fruit_synth.core.settings import IMAGE_KEYS, SCHEMA, SettingsError, load_settings

TINY_OVERRIDES = {"classes": "kiwi, banana", "plurals": "kiwis, bananas", "test_per_class": "4", "input_size": "64",
                  "n_per_class": "4"}
TINY = [arg for key, value in TINY_OVERRIDES.items() for arg in ("-p", f"{key}={value}")]


def listing(folder: Path) -> dict[str, bytes]:
    "Every file and folder under `folder`, hidden ones too, with the bytes of the files: what a refusal leaves as it was."
    if not folder.exists(): return {}
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else b"/") for p in sorted(folder.rglob("*"))}


def refused(returncode: int, stderr: str, *named: str) -> str:
    "The one line of a refusal (exit status 2), checked to name each of `named`."
    assert returncode == 2 and "Traceback" not in stderr, (returncode, stderr[-3000:])
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    for text in named: assert text in lines[0], lines[0]
    return lines[0]


def sweep_args(work: Path, out: Path, *options: str) -> list[str]:
    return ["sweep", "--profile", "grocery", *TINY, "-p", f"work_dir={work}", "--variants", "copy_paste", "--seeds", "1",
            "--train-mode", "probe", *options, "--out", str(out)]


# The settings of the bug report: each gave exit 0 and rows that claimed what did not happen.
REPORTED = {
    "train_mode": (["--vary", "train_mode=probe,finetune"], ["train_mode", "--train-mode"]),  # ran the probe twice
    "seeds": (["--vary", "seeds=1,2"], ["seeds", "--seeds"]),  # no effect
    "seed": (["--vary", "seed=3,5", "--seeds", "3"], ["seed", "--seeds"]),  # ran seed 5 twice, its column overwritten
    "real_dir": (["--vary", "real_dir={data}/photos,{data}/photos_web"], ["real_dir"]),  # both points tested on the first
    "test_per_class": (["--vary", "test_per_class=2,4"], ["test_per_class"]),  # both points tested on the same photos
    "variant_sets_it": (["--vary", "placement=sparse,bins", "--variants", "copy_paste_piles"], ["placement", "copy_paste_piles"]),
    "probe_ignores_it": (["--vary", "lr=0.001,0.01"], ["lr", "--train-mode finetune"]),  # the probe has no learning rate
    "no_variant_reads_it": (["--vary", "real_per_class=0,5"], ["real_per_class", "few_shot_real"]),  # copy_paste has no real photos
    "diffusion_only": (["--vary", "sd_steps=10,20"], ["sd_steps", "diffusion"]),
    "one_seed": (["--vary", "seeds_vary=dataset,training"], ["seeds_vary", "--seeds 2"]),  # the first seed has the profile's images
}


@pytest.mark.parametrize("case", list(REPORTED))
def test_a_setting_the_sweep_does_not_apply_is_refused_up_front(tmp_path, data, case):
    options, named = REPORTED[case]
    result = run_cli(*sweep_args(tmp_path / "work", tmp_path / "out", *[o.format(data=data) for o in options]))
    line = refused(result.returncode, result.stderr, *named)
    assert "nothing was run" in line
    assert listing(tmp_path) == {}  # no work_dir, no sweep folder


# --- every setting of the schema, varied once -------------------------------------------------------------------------

def _fits(key: str, text: str) -> bool:
    try: load_settings("grocery", {**TINY_OVERRIDES, key: text})
    except SettingsError: return False
    return True


def two_values(key: str, settings, folders: tuple[Path, Path]) -> list[str]:
    "Two texts of `key` that each pass the profile's checks: its value (or a first one), and another."
    setting, value = SCHEMA[key], settings.values[key]
    if setting.kind == "bool": return ["true", "false"]
    if setting.kind == "choice": return [value] + [choice for choice in setting.choices if choice != value][:1]
    if setting.kind == "path": return [str(folder) for folder in folders]
    if setting.kind == "str": return ["a photo of {plural}", "{plural} on a table"] if key == "prompt" else ["first", "second"]
    if setting.kind not in ("int", "float"): return ["1", "2"]  # a list: it cannot be one value of a --vary
    number = int if setting.kind == "int" else float
    for candidate in (value + 1, value - 1, value + 8, value - 8, value * 2, value / 2, setting.low, setting.high):
        if candidate is not None and number(candidate) != value and _fits(key, str(number(candidate))):
            return [str(value), str(number(candidate))]
    raise AssertionError(f"no second value found for {key}")


VARIANTS_READING_ALL = ["copy_paste", "few_shot_real", "diffusion", "hybrid"]  # between them, every setting of a variant is read

# a few keys whose outcome is known, so that the test does not only repeat what the code decides
EXPECTED = {("n_per_class", "probe"): "varied", ("masks_per_class", "probe"): "varied", ("placement", "probe"): "varied",
            ("tta", "probe"): "varied", ("real_per_class", "probe"): "varied", ("lr", "finetune"): "varied",
            ("lr", "probe"): "refused", ("augment_crop", "probe"): "refused", ("protocol", "probe"): "refused",
            ("work_dir", "finetune"): "refused", ("classes", "probe"): "refused", ("sweeps", "finetune"): "refused",
            **{(key, mode): "refused" for key in ("train_mode", "seeds", "seed", "real_dir", "test_per_class")
               for mode in ("probe", "finetune")}}


@pytest.fixture(scope="module")
def tiny_settings(tmp_path_factory):
    return load_settings("grocery", {**TINY_OVERRIDES, "work_dir": str(tmp_path_factory.mktemp("work"))})


@pytest.mark.parametrize("mode", ["probe", "finetune"])
@pytest.mark.parametrize("key", list(SCHEMA))
def test_every_setting_is_varied_in_each_run_or_refused_in_one_line(key, mode, tiny_settings, tmp_path, capsys):
    "Varied alone (over variants that read every setting, two seeds): either each point's run trains with its own value, and "
    "no two values share a run or, where it shapes the images, a dataset; or `fruit-synth sweep` refuses in one line naming "
    "the setting, before it writes anything."
    from fruit_synth import cli
    from fruit_synth.study import sweep
    folders = (tmp_path / "one", tmp_path / "two")
    for folder in folders: folder.mkdir()
    texts = two_values(key, tiny_settings, folders)
    vary = f"{key}={','.join(texts)}"
    try:
        spec = sweep.check_axes(tiny_settings, sweep.SweepSpec(sweep.parse_vary([vary]), VARIANTS_READING_ALL, 2), mode)
    except sweep.SweepError as error:
        assert "\n" not in str(error) and key in str(error)
        before = listing(tmp_path)
        code = cli.main(sweep_args(tmp_path / "work", tmp_path / "out", "--vary", vary, "--train-mode", mode,
                                   "--variants", *VARIANTS_READING_ALL, "--seeds", "2"))
        refused(code, capsys.readouterr().err, key)
        assert listing(tmp_path) == before
        outcome = "refused"
    else:
        points = sweep.grid(spec)
        assert len(points) == 2 * len(VARIANTS_READING_ALL) * 2
        runs = [sweep.run_settings(sweep.point_settings(tiny_settings, point), point, mode) for point in points]
        for point, run in zip(points, runs):
            assert run.values[key] == point.values[key], (key, run.values[key], point.values[key])
        assert len({str(point.values[key]) for point in points}) == 2
        for variant in VARIANTS_READING_ALL:
            for index in (0, 1):
                mine = [(point, run) for point, run in zip(points, runs) if (point.variant, point.seed_index) == (variant, index)]
                assert len({sweep._point_digest(run, point, mode, {}) for point, run in mine}) == 2  # never the other value's result
                if key in IMAGE_KEYS:  # it shapes the images: each value has its own dataset
                    assert len({sweep.point_dataset_name(run, variant) for _, run in mine}) == 2
        outcome = "varied"
    assert EXPECTED.get((key, mode), outcome) == outcome


def test_a_varied_value_that_fails_the_profiles_checks_is_refused(tiny_settings):
    from fruit_synth.study import sweep
    spec = sweep.SweepSpec(sweep.parse_vary(["min_objects=1,9"]), ["copy_paste"], 1)  # grocery's max_objects is 4
    with pytest.raises(sweep.SweepError, match=r"--vary min_objects=9: .*min_objects.* max_objects"):
        sweep.check_axes(tiny_settings, spec, "probe")


# --- a representative few, run ----------------------------------------------------------------------------------------

def test_varied_values_reach_the_runs_their_rows_and_their_images(tmp_path, data):
    out = tmp_path / "out"
    result = run_cli(*sweep_args(tmp_path / "work", out, "--vary", "placement=sparse,piles", "--vary", "tta=none,hflip",
                                 "--vary", "fit=crop,pad"))
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out / "sweep.csv", newline="") as handle:
        header = handle.readline().strip().split(",")
        handle.seek(0)
        rows = list(csv.DictReader(handle))
    assert len(header) == len(set(header)), header  # no column twice
    points = [json.loads(path.read_text()) for path in sorted((out / "points").glob("*.json"))]
    assert len(rows) == len(points) == 8 and {row["status"] for row in rows} == {"ok"}
    assert sorted((r["placement"], r["tta"], r["fit"]) for r in rows) == sorted(
        (p["values"]["placement"], p["values"]["tta"], p["values"]["fit"]) for p in points)
    for point in points:
        for key, value in point["values"].items():
            assert point["settings"][key] == value, (key, point["settings"][key], value)  # the settings the run trained with
        base = json.loads((Path(point["dataset"]) / "dataset.json").read_text())["base"]
        assert json.loads((Path(base) / "dataset.json").read_text())["params"]["placement"] == point["values"]["placement"]
    # a sweep folder written before sweeps marked their folders is still theirs: resumed, every point reused
    marker = out / ".fruit-synth-output.json"
    assert json.loads(marker.read_text())["command"] == "sweep"
    marker.unlink()
    again = run_cli(*sweep_args(tmp_path / "work", out, "--vary", "placement=sparse,piles", "--vary", "tta=none,hflip",
                                "--vary", "fit=crop,pad"))
    assert again.returncode == 0 and "8 reused, 0 ran" in again.stderr, again.stderr[-3000:]


# --- sweep --out: folders the sweep does not own ----------------------------------------------------------------------

def test_sweep_out_never_writes_over_a_users_own_sweep_csv(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "sweep.csv").write_text("n_per_class,my accuracy\n4,0.9\n")
    before = listing(tmp_path)
    result = run_cli(*sweep_args(tmp_path / "work", out, "--vary", "n_per_class=4,8"))
    refused(result.returncode, result.stderr, f"'{out}'", "sweep.csv", "--out")
    assert listing(tmp_path) == before


def _training_run(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"schema": 3, "selected": [], "summary": {}}))
    (folder / "model.pt").write_bytes(b"weights")


def _dataset(folder: Path) -> None:
    (folder / "kiwi").mkdir(parents=True)
    (folder / "kiwi" / "00000.png").write_bytes(b"png")
    (folder / "dataset.json").write_text(json.dumps({"variant": "copy_paste", "fingerprint": "f", "complete": True}))
    (folder / "manifest.jsonl").write_text(json.dumps({"file": "kiwi/00000.png", "class": "kiwi", "index": 0}) + "\n")


@pytest.mark.parametrize("kind", ["training run", "dataset", "inside a dataset"])
def test_sweep_out_refuses_a_training_run_or_a_dataset_folder(tmp_path, capsys, kind):
    from fruit_synth import cli
    folder = tmp_path / "target"
    (_training_run if kind == "training run" else _dataset)(folder)
    out = folder / "sweep" if kind == "inside a dataset" else folder
    before = listing(tmp_path)
    code = cli.main(sweep_args(tmp_path / "work", out, "--vary", "n_per_class=4,8"))
    refused(code, capsys.readouterr().err, f"'{folder}", "--out")
    assert listing(tmp_path) == before


# --- run --out ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def no_notebook(monkeypatch):
    "`run_variant` replaced by one that records its calls: these tests are about the folders, not the notebook."
    from fruit_synth.study import report
    calls = []
    def run_variant(settings, variant, runs, *args, **kwargs):
        calls.append(Path(runs) / variant)
        (Path(runs) / variant).mkdir(parents=True, exist_ok=True)
        return report.RunOutcome(variant, "ok", run_dir=Path(runs) / variant)
    monkeypatch.setattr(report, "run_variant", run_variant)
    return calls


def _run(tmp_path: Path, out: Path) -> list[str]:
    return ["run", "--variant", "copy_paste", "--profile", "grocery", *TINY, "-p", f"work_dir={tmp_path / 'work'}", "--out", str(out)]


@pytest.mark.parametrize("kind", ["users metrics.json", "users experiment.html", "variant folder is a dataset",
                                  "runs folder is a dataset", "runs folder is the datasets root"])
def test_run_out_never_writes_over_a_users_files_or_into_a_dataset(tmp_path, capsys, no_notebook, kind):
    from fruit_synth import cli
    runs = tmp_path / "runs"
    if kind == "users metrics.json":
        (runs / "copy_paste").mkdir(parents=True)
        (runs / "copy_paste" / "metrics.json").write_text('{"my": "own numbers"}')
    elif kind == "users experiment.html":
        (runs / "copy_paste").mkdir(parents=True)
        (runs / "copy_paste" / "experiment.html").write_text("<p>my write-up</p>")
    elif kind == "variant folder is a dataset": _dataset(runs / "copy_paste")
    elif kind == "runs folder is a dataset": _dataset(runs)
    else: runs = tmp_path / "work" / "grocery" / "datasets"
    before = listing(tmp_path)
    code = cli.main(_run(tmp_path, runs))
    refused(code, capsys.readouterr().err, "--out")
    assert no_notebook == [] and listing(tmp_path) == before


def test_run_out_reuses_a_run_folder_fruit_synth_wrote(tmp_path, capsys, no_notebook):
    from fruit_synth import cli
    runs = tmp_path / "runs"
    folder = runs / "copy_paste"  # as `report` and earlier `run`s left it: no marker, its run state and metrics
    _training_run(folder)
    (folder / "report-run.json").write_text(json.dumps({"fingerprint": "abc", "status": "ok", "inputs": {}}))
    (folder / "experiment.html").write_text("<html>report</html>")
    assert cli.main(_run(tmp_path, runs)) == 0, capsys.readouterr().err
    assert no_notebook == [folder]
    assert cli.main(_run(tmp_path, runs)) == 0, capsys.readouterr().err  # and again, now that it is marked
    assert cli.main(_run(tmp_path, tmp_path / "new")) == 0  # a new folder
    assert len(no_notebook) == 3


# --- two sweeps on the same folders -----------------------------------------------------------------------------------

@pytest.fixture
def stopped_sweep(tmp_path, data):
    "A sweep (n_per_class 4, 8, 12) stopped by SIGSTOP once its first point is done, its other points' datasets not yet made; "
    "continued when the test ends. Yields (process, its folder, its work_dir)."
    work, out = tmp_path / "work", tmp_path / "first"
    first = subprocess.Popen([str(CLI), *sweep_args(work, out, "--vary", "n_per_class=4,8,12")], cwd=ROOT, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not list((out / "points").glob("*.json")) and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGSTOP)
        assert first.poll() is None, "the first sweep ended before it could be stopped"
        yield first, out, work
    finally:
        if first.poll() is None: os.killpg(first.pid, signal.SIGCONT)
        first.wait(timeout=300)


def test_a_second_sweep_stops_at_once_on_the_same_folder_and_waits_on_the_same_datasets(stopped_sweep, tmp_path):
    first, first_out, work = stopped_sweep
    before = listing(first_out)  # the same folder: it stops at once, in one line naming the first, and writes nothing
    busy = run_cli(*sweep_args(work, first_out, "--vary", "n_per_class=4,8,12"))
    refused(busy.returncode, busy.stderr, f"process {first.pid}", "--out")
    assert listing(first_out) == before
    second_out, log = tmp_path / "second", tmp_path / "second.log"
    with open(log, "w") as handle:  # another folder, the same work_dir: it waits, naming the first
        second = subprocess.Popen([str(CLI), *sweep_args(work, second_out, "--vary", "n_per_class=4,8,12,16")], cwd=ROOT,
                                  start_new_session=True, stdout=subprocess.DEVNULL, stderr=handle, text=True)
    try:
        deadline = time.time() + 120
        while f"waiting for process {first.pid}" not in log.read_text() and second.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert f"waiting for process {first.pid}" in log.read_text(), log.read_text()[-3000:]
        time.sleep(1)
        assert second.poll() is None  # still waiting while the first stands still
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    assert first.wait(timeout=300) == 0, first.stderr.read()[-3000:]
    assert second.wait(timeout=300) == 0, log.read_text()[-3000:]
    def rows(folder: Path) -> dict:
        with open(folder / "sweep.csv", newline="") as handle:
            return {row["n_per_class"]: {k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)}
    first_rows, second_rows = rows(first_out), rows(second_out)
    assert {row["status"] for row in [*first_rows.values(), *second_rows.values()]} == {"ok"}
    assert first_rows == {n: row for n, row in second_rows.items() if n != "16"}  # the same datasets, the same runs


# --- the one test sample, when the sweep varies the cut-outs -----------------------------------------------------------

def test_the_test_sample_leaves_out_the_photos_every_cut_out_value_was_cut_from(tmp_path, data):
    "Cut-outs and test photos from one folder: the photos the cut-outs of masks_per_class = 6 were cut from are never tested on."
    from fruit_synth.study import sweep
    from fruit_synth.data.sources import cutout_library, cutout_origins
    settings = load_settings("grocery", {**TINY_OVERRIDES, "work_dir": str(tmp_path), "real_dir": str(data / "white"),
                                         "mask_dir": str(data / "white"), "masks_per_class": "2", "test_per_class": "30",
                                         "allow_fewer": "true"})
    photos, left = sweep.sweep_photos(settings, sweep.SweepSpec({"masks_per_class": [2, 6]}, ["copy_paste"]))
    six = settings.replace(masks_per_class=6)
    sources = {path.resolve() for path in cutout_origins(six, cutout_library(six, progress=False)[0]).hashes}
    tested = {path.resolve() for paths in photos.values() for path in paths}
    assert len(sources) == 12 and len(tested) > 30 and not tested & sources, sorted(tested & sources)
    assert left["masks_per_class"] == [2, 6] and left["cutout_sources"] >= 12
