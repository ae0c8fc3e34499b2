"""The leakage check end to end (issue 12): the test sample the experiment uses, `fruit-synth train --test`, RGBA cut-outs.

A small demo world, and a real_dir that holds its "real" photos, the planted near-duplicate of a white photo, and the
white photos themselves (as when cut-outs are made from the same photo collection the test photos come from). With
test_per_class as large as a class folder, a photo the check misses is in the test sample."""
import json
import shutil
from pathlib import Path

import pytest

from fruit_synth.cli import main
from fruit_synth.generate.datasets import load_dataset
from fruit_synth.data.demo import ensure_demo_world
from fruit_synth.core.images import file_sha256
from fruit_synth.core.settings import load_settings
from fruit_synth.data import sources as stage  
from fruit_synth.generate.variants import generate_variant

CLASSES = ["orange", "kiwi"]
PER_CLASS = 6 + 1 + 3  # "real" photos, the planted near-duplicate, white photos


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    "A small demo world and `photos/`, its real photos, planted near-duplicates and white photos per class."
    root = tmp_path_factory.mktemp("leakage")
    ensure_demo_world(root / "world", seed=0, progress=False, workers=1, real_per_class=6, white_per_class=3,
                      n_backgrounds=3, real_size=96, white_size=96, background_size=96)
    for name in CLASSES:
        shutil.copytree(root / "world/real" / name, root / "photos" / name)
        for path in sorted((root / "world/white" / name).glob("*.jpg")): shutil.copy(path, root / "photos" / name)
        assert len(list((root / "photos" / name).iterdir())) == PER_CLASS
    return root


def options(world: Path, work: str, **changes) -> dict:
    "Settings of the small world: two classes, every photo of a class asked for, each white photo a cut-out source."
    return {"demo": False, "classes": ", ".join(CLASSES), "plurals": "oranges, kiwis", "real_dir": str(world / "photos"),
            "mask_dir": str(world / "world/white"), "backgrounds_dir": str(world / "world/backgrounds"), "min_backgrounds": 2,
            "work_dir": str(world / work), "test_per_class": PER_CLASS, "allow_fewer": True, "masks_per_class": 3,
            "image_size": 64, **changes}


def few_shot_sources(settings, root: Path) -> set[str]:
    "The sha256 of each source photo of the few-shot training set."
    dataset = load_dataset(generate_variant(settings, "few_shot", root, jobs=1, progress=False))
    return {record["source_sha256"] for record in dataset.records}


def planted(world: Path, name: str) -> Path:
    return world / "photos" / name / f"real_{name}_dup.jpg"


def test_the_experiments_test_sample_holds_no_few_shot_source_and_no_planted_near_duplicate(world):
    settings = load_settings("demo", options(world, "work-sample"))
    photos = stage.run_photos(settings, progress=False).photos  # what nbs/experiment.ipynb tests on
    sources = few_shot_sources(settings, world / "work-sample/datasets")
    assert len(sources) == 3 * len(CLASSES)
    assert file_sha256(world / "world/white/orange/white_orange_00.jpg") in sources  # what the planted photo copies
    for name in CLASSES:
        assert len(photos[name]) == 6, photos[name]  # the six "real" photos are kept
        assert planted(world, name) not in photos[name]
        assert not {file_sha256(path) for path in photos[name]} & sources


def fake_training(monkeypatch) -> dict:
    "Replace training by a stand-in that keeps the test photos it is given (returned, filled in when `train` runs)."
    import fruit_synth.learn.run as run
    from fruit_synth.learn.evaluate import toy_result
    given = {}
    def trained(data, settings, out, test, progress=True):
        given.update(test.photos)
        return toy_result(settings.classes, 0.5)  # the command writes its metrics.json
    monkeypatch.setattr(run, "train_and_test", trained)
    return given


def test_train_with_a_test_folder_leaves_out_the_photos_the_training_set_was_made_from(world, capsys, monkeypatch):
    settings = options(world, "work-train")
    data = generate_variant(load_settings("demo", settings), "few_shot", world / "work-train/datasets", jobs=1, progress=False)
    sources = {record["source_sha256"] for record in load_dataset(data).records}
    given = fake_training(monkeypatch)
    argv = ["train", "--data", data, "--out", world / "run", "--test", world / "photos", "--profile", "demo"]
    argv += [part for key, value in settings.items() for part in ("-p", f"{key}={value}")]
    capsys.readouterr()
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert status == 0, err
    assert f"left out as photos the training set was made from, or their near-duplicates: {4 * len(CLASSES)}" in err
    for name in CLASSES:
        assert len(given[name]) == 6 and planted(world, name) not in given[name]
        assert not {file_sha256(path) for path in given[name]} & sources
    assert json.loads((world / "run/metrics.json").read_text())["test"]["left_out_as_training_sources"] == 4 * len(CLASSES)


def test_train_without_a_test_folder_leaves_the_datasets_real_photos_out_of_the_profile_sample(world, capsys, monkeypatch):
    "A dataset holding k real photos per class, trained without --test: the profile's sample holds none of them."
    settings = options(world, "work-real-train", real_train_dir=str(world / "photos"), real_per_class=2)
    data = generate_variant(load_settings("demo", settings), "few_shot_real", world / "work-real-train/datasets", jobs=1,
                            progress=False)
    real = {file_sha256(Path(record["real_file"])) for record in load_dataset(data).records if record.get("real_file")}
    assert len(real) == 2 * len(CLASSES)
    given = fake_training(monkeypatch)
    argv = ["train", "--data", data, "--out", world / "run-real", "--profile", "demo"]
    # the profile itself asks for no real photos: only the dataset's manifest says which were trained on
    argv += [part for key, value in options(world, "work-real-train").items() for part in ("-p", f"{key}={value}")]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    assert given and not {file_sha256(path) for paths in given.values() for path in paths} & real
    assert json.loads((world / "run-real/metrics.json").read_text())["test"]["left_out_as_training_sources"] >= 1


def test_rgba_cutouts_without_their_originals_are_named_loudly_and_originals_close_the_hole(world, capsys):
    from fruit_synth.study.report import sources_section
    rgba = options(world, "work-rgba", mask_dir=str(world / "world/cutouts"))  # RGBA files named like the white photos
    check = stage.check_sources(load_settings("demo", rgba), progress=False)
    assert {record.method for record in check.library.cutouts} == {"rgba"}
    warning = "leakage check incomplete: 6 of 6 cut-outs are RGBA files whose original photo is unknown"
    assert warning in check.leakage_warnings[0] and "set cutout_originals" in check.leakage_warnings[0]
    assert f"warning: {warning}" in check.summary()  # what `fruit-synth sources` prints
    pictures = {"test": "t.jpg", "cutouts": "c.jpg", "backgrounds": "b.jpg", "leaks": "l.jpg"}
    assert warning in sources_section(check, pictures)  # the report's leakage part
    capsys.readouterr()
    assert main(["sources", "--profile", "demo", *[p for k, v in rgba.items() for p in ("-p", f"{k}={v}")]]) == 0
    assert f"warning: {warning}" in capsys.readouterr().out
    settings = load_settings("demo", {**rgba, "cutout_originals": str(world / "world/white")})
    check = stage.check_sources(settings, progress=False)
    assert check.leakage_warnings == [] and warning not in check.summary()
    photos = stage.run_photos(settings, progress=False).photos
    sources = few_shot_sources(load_settings("demo", options(world, "work-rgba-fs")), world / "work-rgba-fs/datasets")
    for name in CLASSES:
        assert len(photos[name]) == 6 and planted(world, name) not in photos[name]
        assert not {file_sha256(path) for path in photos[name]} & sources


def test_the_k_real_training_photos_are_out_of_every_variants_test_sample(world):
    "With real_per_class = k the experiment's test sample (shared by all variants of a run) holds none of the k photos."
    settings = load_settings("demo", options(world, "work-real", real_train_dir=str(world / "photos"), real_per_class=2))
    held = stage.real_train_photos(settings)
    assert [len(paths) for paths in held.values()] == [2, 2]
    photos = stage.run_photos(settings, progress=False).photos
    sample = {path for paths in photos.values() for path in paths}
    assert sample and not sample & {path for paths in held.values() for path in paths}
    without_k = {path for paths in stage.run_photos(load_settings("demo", options(world, "work-real"))).photos.values()
                 for path in paths}
    chosen = {path for paths in held.values() for path in paths}
    assert chosen & without_k  # some of the k photos were in the sample without real_per_class: the check has work to do
    assert sample == without_k - chosen
