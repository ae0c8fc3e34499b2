"""Copy-paste generation speed: the project's generator against a naive PIL script and against pure encoding.

Generates 1000 images per size (200 per class) from cut-outs extracted from the real white-background photos and
the real backgrounds in ../shared/data (or $FRUIT_SYNTH_DATA), in one process run, for the study's sparse copy-paste
and for `bins` (the frame filled with 15-80 fruits, contact shading, camera), and prints images/s and the ratios the
issues set as goals: copy-paste >= 4x the naive reference and within 2x of the encode bound; bins >= 3x naive.
Two encode bounds: encoding the made images as the dataset stores them (a camera that ends in JPEG is stored as that
JPEG, at its drawn quality) and as PNG (the image_format setting, what every image cost before). A second naive
script pastes as many fruits per image as bins does (the mean of its records' `requested`), for the cost of the
scene itself: the naive reference of the goal pastes 1-4.

With --repeats N the project's two runs and the naive script are timed N times, interleaved (the machine's speed
drifts between and within runs), and the medians are compared; each repeat's ratios are printed too. The images are
written to a temporary folder that is removed at the end.

    .venv/bin/python benchmarks/copy_paste.py [--per-class 200] [--sizes 224,512] [--jobs N] [--repeats N] [--camera lighting,noise,blur,jpeg]
"""
import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fruit_synth.generate.datasets import load_dataset
from fruit_synth.generate.variants import generate_variant
from fruit_synth.core.images import encode_image
from fruit_synth.core.settings import load_settings
from fruit_synth.data.sources import cutout_library, usable_backgrounds


def project_generator(settings, out: Path, jobs: int | None, variant: str = "copy_paste") -> float:
    "Seconds for the project's generator to make the whole dataset of `variant`."
    start = time.perf_counter()
    generate_variant(settings, variant, out, jobs=jobs, progress=False)
    return time.perf_counter() - start


def naive_reference(backgrounds: list[Path], cutouts: dict[str, list[Path]], per_class: int, size: int, out: Path,
                    fruits: int | None = None) -> float:
    "Seconds for a plain single-process PIL script: open a background, paste cut-outs with their alpha, save. `fruits`: that many per image, smaller and cut by the frame's edges as bins fill it (no depth, no shading); None: 1-4 inside the frame, as the study's sparse copy-paste."
    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for name, files in cutouts.items():
        for index in range(per_class):
            canvas = Image.open(backgrounds[rng.integers(len(backgrounds))]).convert("RGB").resize((size, size))
            for _ in range(rng.integers(1, 5) if fruits is None else fruits):
                cutout = Image.open(files[rng.integers(len(files))]).convert("RGBA")
                scale = rng.uniform(*((0.25, 0.55) if fruits is None else (0.15, 0.3))) * size / max(cutout.size)
                cutout = cutout.resize((max(1, int(cutout.width * scale)), max(1, int(cutout.height * scale))))
                cutout = cutout.rotate(rng.uniform(-180, 180), expand=True)
                if fruits is None: x, y = rng.integers(0, max(1, size - cutout.width)), rng.integers(0, max(1, size - cutout.height))
                else: x, y = rng.integers(-cutout.width // 3, size - cutout.width // 2), rng.integers(-cutout.height // 3, size - cutout.height // 2)
                canvas.paste(cutout, (int(x), int(y)), cutout)
            canvas.save(out / f"{name}_{index:05d}.png")
    return time.perf_counter() - start


def encode_bound(images: list[Image.Image], count: int, suffix: str) -> float:
    "Seconds to only encode `count` ready images in the format of `suffix`, as the project encodes them."
    start = time.perf_counter()
    for index in range(count): encode_image(images[index % len(images)], suffix)
    return time.perf_counter() - start


def stored_bound(images: list[Image.Image], records: list[dict], count: int) -> float:
    "Seconds to only encode `count` ready images as the dataset stores them: the camera's JPEG (OpenCV, its quality) or PNG."
    pixels = [cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR) for image in images]
    start = time.perf_counter()
    for index in range(count):
        record = records[index % len(records)]
        if record["file"].endswith(".jpg"):
            cv2.imencode(".jpg", pixels[index % len(pixels)], (cv2.IMWRITE_JPEG_QUALITY, record["camera"]["jpeg"]))
        else: encode_image(images[index % len(images)], Path(record["file"]).suffix)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--sizes", default="224,512", help="comma-separated image sizes")
    parser.add_argument("--jobs", type=int, default=None, help="project workers (default: all cores)")
    parser.add_argument("--repeats", type=int, default=1, help="time the project and the naive script this many times, interleaved")
    parser.add_argument("--camera", default=None, help="camera effects, comma-separated, e.g. lighting,noise,blur,jpeg "
                        "(default: the grocery profile's; with jpeg, the camera's JPEG is the stored file)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fruit-synth-bench-"))
    try:
        for size in [int(value) for value in args.sizes.split(",")]: bench_size(args, size, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_size(args, size: int, work: Path) -> None:
    "Time and print every row for one image size."
    changes = {} if args.camera is None else {"camera": args.camera}
    settings = load_settings("grocery", {"work_dir": work, "n_per_class": args.per_class, "image_size": size, **changes})
    library, _ = cutout_library(settings, progress=False)  # a one-off stage, not part of generation
    backgrounds = usable_backgrounds(settings).images
    cutouts = {name: [r.path for r in records] for name, records in library.by_class().items()}
    total = args.per_class * len(cutouts)
    times: dict[str, list[float]] = {"project": [], "bins": [], "naive": []}
    for repeat in range(args.repeats):  # interleaved: a drift of the machine's speed hits all three alike
        times["project"].append(project_generator(settings, work / f"project-{size}-{repeat}", args.jobs))
        times["bins"].append(project_generator(settings, work / f"project-{size}-{repeat}", args.jobs, "copy_paste_bins"))
        times["naive"].append(naive_reference(backgrounds, cutouts, args.per_class, size, work / f"naive-{size}-{repeat}"))
    project, bins, naive = (statistics.median(times[key]) for key in ("project", "bins", "naive"))
    dataset = load_dataset(work / f"project-{size}-0/copy_paste")
    records = dataset.records[:50]
    made = [Image.open(dataset.folder / record["file"]) for record in records]
    for image in made: image.load()
    stored = Counter(Path(record["file"]).suffix for record in dataset.records)
    fruits = round(float(np.mean([record["requested"] for record in load_dataset(work / f"project-{size}-0/copy_paste_bins").records])))
    naive_full = naive_reference(backgrounds, cutouts, args.per_class, size, work / f"naive-bins-{size}", fruits)
    encode = stored_bound(made, records, total)
    png = encode_bound(made, total, "." + settings.image_format)
    print(f"\n{total} images at {size}x{size} (stored as {dict(stored)}; image_format {settings.image_format}), {os.cpu_count()} cores, "
          f"project jobs = {args.jobs or os.cpu_count()}, camera = {', '.join(settings.camera) or 'none'}")
    print(f"{'':<44}{'seconds':>9}{'images/s':>10}")
    for label, seconds in [("project copy_paste (sparse)", project), ("project copy_paste_bins", bins),
                           ("naive PIL script (1 process, sparse)", naive),
                           (f"naive PIL script (1 process, {fruits} fruits)", naive_full), ("encode bound, as stored (encoding only)", encode),
                           (f"encode bound, all {settings.image_format} (encoding only)", png)]:
        print(f"{label:<44}{seconds:>9.2f}{total / seconds:>10.1f}")
    print(f"copy_paste vs naive: {naive / project:.2f}x faster (goal >= 4x); vs encode bound as stored: {project / encode:.2f}x "
          f"the encoding time (goal <= 2x); vs all-{settings.image_format} bound: {project / png:.2f}x")
    print(f"copy_paste_bins vs naive: {naive / bins:.2f}x faster (goal >= 3x); vs all-{settings.image_format} bound: {bins / png:.2f}x the encoding time; "
          f"vs the naive script pasting bins' {fruits} fruits per image: {naive_full / bins:.2f}x faster")
    if args.repeats > 1:
        print("each repeat, seconds: " + "; ".join(f"{key} " + ", ".join(f"{s:.2f}" for s in values) for key, values in times.items()))
        print("each repeat, bins vs naive: " + ", ".join(f"{n / b:.2f}x" for n, b in zip(times["naive"], times["bins"])) +
              "; copy_paste vs naive: " + ", ".join(f"{n / p:.2f}x" for n, p in zip(times["naive"], times["project"])))


if __name__ == "__main__":
    main()
