"""Bad input, generated on the fly: each case ends in a clear error or a counted, reported skip, never a traceback."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli

CLASSES = ["-p", "classes=orange, kiwi", "-p", "plurals=oranges, kiwis"]


def _photo(path: Path, colour, size=(64, 48), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def _cutout(path: Path, colour, seed=0, transparent=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:60, :60]
    alpha = np.zeros((60, 60), np.uint8) if transparent else (((yy - 30) ** 2 + (xx - 30) ** 2 < 400) * 255).astype(np.uint8)
    rgba = np.dstack([np.full((60, 60, 3), colour, np.uint8), alpha])
    Image.fromarray(rgba, "RGBA").save(path)


@pytest.fixture
def world(tmp_path: Path) -> Path:
    "Real photos with every kind of bad file, RGBA cut-outs (one all-transparent), and backgrounds."
    for name, colour in [("orange", (230, 130, 30)), ("kiwi", (110, 90, 50))]:
        for i in range(4): _photo(tmp_path / f"real/{name}/{name}_{i}.jpg", colour, seed=i)
        for i in range(3): _cutout(tmp_path / f"masks/{name}/cut_{i}.png", colour, seed=i)
    real = tmp_path / "real/orange"
    (real / "zero.jpg").write_bytes(b"")
    (real / "notes.jpg").write_text("not a picture at all")
    good = (real / "orange_0.jpg").read_bytes()
    (real / "truncated.jpg").write_bytes(good[: len(good) // 3])
    Image.new("RGB", (3000, 3000), "orange").save(real / "huge.png")  # over the pixel limit set below
    palette = Image.new("P", (50, 40), 1)
    palette.putpalette([0, 0, 0] + [240, 140, 20] * 255)
    palette.paste(0, (0, 0, 10, 40))
    palette.save(real / "palette.png", transparency=0)
    Image.new("CMYK", (50, 40), (0, 120, 240, 10)).save(real / "cmyk.jpg")
    Image.fromarray((np.linspace(0, 65535, 50 * 40).reshape(40, 50)).astype(np.uint16)).save(real / "sixteen.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (80, 40), (230, 130, 30)).save(real / "rotated.jpg", exif=exif)  # 40 px: over min_image_edge
    # name the all-transparent cut-out so that the seeded candidate order tries it first: it must be rejected
    from fruit_synth.data.masks import candidate_order
    others = [tmp_path / f"masks/kiwi/cut_{i}.png" for i in range(3)]
    empty = next(tmp_path / f"masks/kiwi/cut_empty_{k}.png" for k in range(200)
                 if candidate_order(others + [tmp_path / f"masks/kiwi/cut_empty_{k}.png"], seed=0)[0].name == f"cut_empty_{k}.png")
    _cutout(empty, (110, 90, 50), transparent=True)
    for i in range(3): _photo(tmp_path / f"bg/bg_{i}.jpg", (60 * i, 120, 200 - 50 * i), size=(80, 80), seed=10 + i)
    return tmp_path


def _args(world: Path, *extra: str) -> list[str]:
    return ["sources", "--profile", "paper", *CLASSES, "-p", f"real_dir={world / 'real'}", "-p", f"mask_dir={world / 'masks'}",
            "-p", f"backgrounds_dir={world / 'bg'}", "-p", f"work_dir={world / 'work'}", "-p", "test_per_class=3",
            "-p", "masks_per_class=3", "-p", "min_backgrounds=2", "-p", "max_image_pixels=4000000", *extra]


def test_bad_files_are_counted_and_reported_and_odd_formats_are_kept(world: Path):
    result = run_cli(*_args(world))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads((world / "work/paper/sources.json").read_text())
    reasons = {Path(row["path"]).name: row["reason"] for row in report["skipped"]}
    assert "empty file" in reasons["zero.jpg"]
    assert "not an image" in reasons["notes.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "over the limit" in reasons["huge.png"] and "max_image_pixels" in reasons["huge.png"]
    empty = next(name for name in reasons if name.startswith("cut_empty"))  # the all-transparent cut-out, rejected
    assert "transparent" in reasons[empty] or "empty" in reasons[empty] or "coverage" in reasons[empty], reasons[empty]
    for name in ["zero.jpg", "notes.jpg", "truncated.jpg", "huge.png", empty]:
        assert name in result.stdout, f"{name} not reported on the terminal"
    orange = next(row for row in report["classes"] if row["cls"] == "orange")
    assert orange["real_found"] == 4 + 4  # the four good photos plus palette, CMYK, 16-bit and rotated
    assert "skipped files: 5" in result.stdout


def test_a_missing_class_folder_is_a_clear_error(world: Path):
    (world / "real/kiwi").rename(world / "real/apple")
    result = run_cli(*_args(world))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "real_dir" in result.stderr and "no class folder matching 'kiwi'" in result.stderr and "apple" in result.stderr


def test_an_empty_cutout_folder_is_a_clear_error(world: Path):
    for path in (world / "masks/kiwi").iterdir(): path.unlink()
    result = run_cli(*_args(world))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "kiwi" in result.stderr and str(world / "masks") in result.stderr


def test_too_few_real_photos_is_an_error_unless_allowed(world: Path):
    result = run_cli(*_args(world, "-p", "test_per_class=50"))
    assert result.returncode == 2 and "fewer than test_per_class = 50" in result.stderr and "allow_fewer" in result.stderr
    assert "override test_per_class=50: class" in result.stderr
    allowed = run_cli(*_args(world, "-p", "test_per_class=50", "-p", "allow_fewer=true"))
    assert allowed.returncode == 0 and "warning: class 'orange' has 8 usable real photos" in allowed.stdout


def test_bad_settings_name_the_setting_and_what_is_expected(world: Path):
    unknown = run_cli("settings", "-p", "test_per_clas=5")
    assert unknown.returncode == 2 and "unknown setting 'test_per_clas'" in unknown.stderr and "test_per_class" in unknown.stderr
    bad = run_cli("settings", "--profile", "paper", "-p", "val_fraction=2")
    assert bad.returncode == 2 and "val_fraction: expected a number in [0.01, 0.9], found '2'" in bad.stderr
    missing = run_cli(*_args(world, "-p", f"backgrounds_dir={world / 'nowhere'}"))
    assert missing.returncode == 2 and "backgrounds_dir" in missing.stderr and "does not exist" in missing.stderr


def test_bad_recipe_and_scene_settings_are_one_line_errors_naming_the_setting(tmp_path: Path, data):
    fit = run_cli("settings", "--profile", "grocery", "-p", "fit=stretch")
    assert fit.returncode == 2 and "fit" in fit.stderr and "crop, pad, squash" in fit.stderr and "Traceback" not in fit.stderr
    for setting, value in (("bins_tilt", "0,1.5"), ("bins_fill", "2"), ("surroundings", "shelf"), ("camera", "flash")):
        result = run_cli("settings", "--profile", "grocery", "-p", f"{setting}={value}")
        assert result.returncode == 2 and setting in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    # a scale too small to fill the frame within bins_max_objects: the error names the setting and the count needed
    small = run_cli("generate", "copy-paste", "--variant", "copy_paste_bins", "--out", tmp_path / "out", "--profile", "grocery",
                    "-p", "n_per_class=2", "-p", "bins_scale=0.03,0.1", "-p", f"work_dir={tmp_path / 'work'}")
    assert small.returncode == 2 and "Traceback" not in small.stderr, small.stderr
    assert "bins_scale" in small.stderr and "needs" in small.stderr and "bins_max_objects = 400" in small.stderr


def test_bad_test_domains_are_clear_errors_before_any_run(world: Path):
    (world / "web/orange").mkdir(parents=True)
    _photo(world / "web/orange/o.jpg", (230, 130, 30))
    for value, expected in ((f"web", "the pair 'web' has no '=folder'"),
                            (f"my web={world / 'web'}", "label 'my web'"),
                            (f"web={world / 'nowhere'}", "does not exist"),
                            (f"web={world / 'web'}", "has usable photos of 1 class(es) (orange; 0 files skipped)"),
                            (f"real={world / 'real'}", "label 'real' already names the run's own test photos")):
        result = run_cli(*_args(world, "-p", f"test_domains={value}"))
        assert result.returncode == 2 and "Traceback" not in result.stderr, (value, result.stderr)
        assert "test_domains" in result.stderr and expected in result.stderr, (value, result.stderr)
    _photo(world / "web/kiwi/k.jpg", (110, 90, 50))  # two classes: a domain
    good = run_cli(*_args(world, "-p", f"test_domains=web={world / 'web'}"))
    assert good.returncode == 0, good.stderr
    assert "test domain web: 2 photos (orange 1, kiwi 1)" in good.stdout
