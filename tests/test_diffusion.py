"""Stable Diffusion generation on a tiny random-weight pipeline: missing weights, seeds vs batches, blocked images,
out-of-memory, and two processes under `accelerate launch`. Every image comes out of a real diffusers pipeline call."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, run_cli
from tiny_sd import save_tiny_pipeline

from fruit_synth.generate.datasets import generate, load_dataset
from fruit_synth.core.seeds import image_seed
from fruit_synth.generate.diffusion import diffusion_generator, is_blank
from fruit_synth.core.settings import load_settings

HUB_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    "A tiny random-weight SD pipeline folder, with a tiny safety checker."
    return save_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


def tiny_args(model: Path, tmp_path: Path, per_class: int = 2, batch: int = 4) -> list[str]:
    return ["-p", f"sd_model={model}", "-p", "sd_size=64", "-p", "sd_steps=2", "-p", f"n_per_class={per_class}",
            "-p", f"sd_batch_size={batch}", "-p", "device=cpu", "-p", f"work_dir={tmp_path / 'work'}"]


def tiny_settings(model: Path, tmp_path: Path, **changes):
    values = {"sd_model": model, "sd_size": 64, "sd_steps": 2, "n_per_class": 2, "device": "cpu",
              "work_dir": tmp_path / "work", **changes}
    return load_settings("demo", [f"{key}={value}" for key, value in values.items()])


def pixels(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


@pytest.mark.parametrize("offline", [True, False])
def test_missing_weights_fail_with_ways_to_provide_them(tmp_path, offline):
    env = {**os.environ, "HF_HOME": str(tmp_path / "empty-cache")}
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("TRANSFORMERS_OFFLINE", None)  # huggingface_hub reads it as HF_HUB_OFFLINE
    if offline: env["HF_HUB_OFFLINE"] = "1"
    else: env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # a hub that does not answer, on any machine (port 9 is closed)
    result = subprocess.run([sys.executable, "-m", "fruit_synth.cli", "generate", "diffusion", "--out", str(tmp_path / "out"),
                             "-p", f"sd_model={HUB_ID}", "-p", f"work_dir={tmp_path / 'work'}"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("fruit-synth generate: error: Stable Diffusion weights") and HUB_ID in error
    assert "-p sd_model=" in error and "HF_HOME" in error and "online" in error
    assert ("HF_HUB_OFFLINE is set" in error) == offline
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "diffusion").exists(), "nothing is claimed before the weights are found"


def test_a_folder_that_is_not_a_pipeline_is_refused(tmp_path):
    result = run_cli("generate", "diffusion", "--out", tmp_path / "out", "-p", f"sd_model={tmp_path}")
    assert result.returncode == 2 and "no model_index.json" in result.stderr


def test_cli_makes_a_recorded_dataset_from_a_local_pipeline_folder(tmp_path, tiny_model):
    result = run_cli("generate", "diffusion", "--out", tmp_path / "out", *tiny_args(tiny_model, tmp_path),
                     "-p", "prompt=a photo of whole {plural} on the table. top view | {plural} in a bowl")
    assert result.returncode == 0, result.stderr[-3000:]
    dataset = load_dataset(tmp_path / "out" / "diffusion")
    assert len(dataset.records) == 10
    kiwi = [r for r in dataset.records if r["class"] == "kiwi"]
    assert [r["prompt"] for r in kiwi] == ["a photo of whole kiwis on the table. top view", "kiwis in a bowl"]
    for record in dataset.records:
        assert record["negative_prompt"] == "sliced, halved, cut" and record["steps"] == 2 and record["size"] == 64
        assert record["guidance_scale"] == 7.5 and record["scheduler"] == "default" and record["model"] == str(tiny_model)
        assert record["generator_seed"] == record["seed"] == image_seed(0, "diffusion", record["class"], record["index"])
        assert len(record["model_index_sha256"]) == 64
        assert Image.open(dataset.folder / record["file"]).size == (64, 64)
    assert dataset.info["method"] == "diffusion" and dataset.info["safety_checker"] is True
    assert dataset.info["regenerated_images"] == 0 and dataset.info["out_of_memory"] == []


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++", "euler"])
def test_schedulers_by_name(tmp_path, tiny_model, scheduler):
    generator, _, facts = diffusion_generator(tiny_settings(tiny_model, tmp_path, scheduler=scheduler, safety_checker="false"))
    expected = {"ddim": "DDIMScheduler", "dpm++": "DPMSolverMultistepScheduler", "euler": "EulerDiscreteScheduler"}
    assert facts["scheduler_class"] == expected[scheduler] and facts["safety_checker"] is False
    if scheduler == "dpm++": assert generator.pipeline.scheduler.config.algorithm_type == "dpmsolver++"
    (image, details), = generator.make_batch([("tomato", 0)])
    assert details["scheduler"] == scheduler and image.size == (64, 64) and not is_blank(image)


def test_an_image_depends_on_its_seed_not_on_its_batch(tmp_path, tiny_model):
    generator, _, _ = diffusion_generator(tiny_settings(tiny_model, tmp_path))
    jobs = [(name, index) for name in ("orange", "peach") for index in range(3)]
    made = {}
    for size in (1, 3, 3):
        generator.batch_size = size
        made.setdefault(size, []).append([np.asarray(image, dtype=np.int16) for image, _ in generator.make_batch(jobs)])
    for first, second in zip(*made[3]): assert (first == second).all()  # same batches: identical
    # batch 1 vs 3: the same noise; only float rounding of batched kernels differs (about 1e-6), which can move a
    # pixel value by one level of 255
    for single, batched in zip(made[1][0], made[3][0]):
        assert np.abs(single - batched).max() <= 1 and (single != batched).mean() < 0.001
    different = [np.asarray(image) for image, _ in generator.make_batch([("orange", 0), ("orange", 1)])]
    assert not (different[0] == different[1]).all()


class BlockFirst:
    "Wraps the real safety checker and blacks out the first image it is shown."
    def __init__(self, checker):
        self.checker, self.shown = checker, 0

    def __call__(self, images, clip_input):
        images, flags = self.checker(images=images, clip_input=clip_input)
        flags = list(flags)
        if self.shown == 0:
            images[0] = 0.0
            flags[0] = True
        self.shown += 1
        return images, flags


def test_a_blocked_image_is_made_again_from_the_next_seed_and_recorded(tmp_path, tiny_model):
    settings = tiny_settings(tiny_model, tmp_path)
    generator, counts, facts = diffusion_generator(settings)
    generator.pipeline.safety_checker = BlockFirst(generator.pipeline.safety_checker)
    folder = generate(generator, tmp_path / "out", "diffusion", counts, settings, 1, False, {"method": "diffusion", **facts})
    dataset = load_dataset(folder)
    regenerated = [r for r in dataset.records if "regenerated_from_seed" in r]
    assert len(regenerated) == 1 and dataset.info["regenerated_images"] == 1
    record = regenerated[0]
    assert (record["class"], record["index"]) == ("orange", 0)
    assert record["regenerated_from_seed"] == record["seed"] and record["generator_seed"] == record["seed"] + 1
    assert record["regenerations"] == 1
    assert all(not is_blank(Image.open(folder / r["file"])) for r in dataset.records)


class OutOfMemoryOnce:
    "Wraps the real pipeline; the first call with more than one image raises CUDA out-of-memory."
    def __init__(self, pipeline):
        self.pipeline, self.raised, self.sizes = pipeline, False, []

    def __getattr__(self, name):
        return getattr(self.pipeline, name)

    def __call__(self, prompt, **options):
        if len(prompt) > 1 and not self.raised:
            self.raised = True
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        self.sizes.append(len(prompt))
        return self.pipeline(prompt=prompt, **options)


def test_out_of_memory_halves_the_batch_and_is_recorded(tmp_path, tiny_model):
    settings = tiny_settings(tiny_model, tmp_path, sd_batch_size=4)
    generator, counts, facts = diffusion_generator(settings)
    generator.pipeline = OutOfMemoryOnce(generator.pipeline)
    folder = generate(generator, tmp_path / "out", "diffusion", counts, settings, 1, False, {"method": "diffusion", **facts})
    dataset = load_dataset(folder)
    assert len(dataset.records) == 10
    assert dataset.info["out_of_memory"] == [{"batch_size": 4, "now": 2, "process": 0}]
    assert dataset.info["batch_size"] == 4 and set(generator.pipeline.sizes) == {2}


def test_two_accelerate_processes_write_every_image_once_and_the_same_files(tmp_path, tiny_model):
    args = ["generate", "diffusion", *tiny_args(tiny_model, tmp_path, per_class=3, batch=2)]
    one = subprocess.run([sys.executable, "-m", "fruit_synth.cli", *args, "--out", str(tmp_path / "one")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    accelerate = Path(sys.executable).parent / "accelerate"
    # accelerate's --cpu starts a single process without MPI; --multi_gpu with no GPU visible starts 2 over gloo
    two = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "fruit_synth.cli", *args,
                          "--out", str(tmp_path / "two")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    folder = tmp_path / "two" / "diffusion"
    records = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    keys = [(r["class"], r["index"]) for r in records]
    assert sorted(keys) == sorted({(name, index) for name in load_settings("demo").classes for index in range(3)})
    assert len(keys) == len(set(keys)) == 15
    assert not list(folder.glob(".manifest-part-*")), "the parts are merged into the manifest"
    assert pixels(tmp_path / "one" / "diffusion") == pixels(folder)
    assert (tmp_path / "one/diffusion/manifest.jsonl").read_bytes() == (folder / "manifest.jsonl").read_bytes()
    assert json.loads((folder / "dataset.json").read_text())["processes"] == 2


def test_each_seed_draws_its_own_diffusion_images(tmp_path, tiny_model):
    "seeds_vary = dataset: the second seed's set comes from other noise, with the same prompts and the same pipeline."
    from fruit_synth.generate.datasets import load_dataset
    from fruit_synth.generate.variants import seed_datasets
    folders = seed_datasets(tiny_settings(tiny_model, tmp_path, seeds=2, classes="orange,peach", plurals="oranges,peaches"),
                            "diffusion", jobs=1, progress=False)
    first, second = (load_dataset(folder) for folder in folders)
    assert (first.info["seed"], second.info["seed"]) == (0, 1) and len(first.records) == len(second.records) == 4
    assert [r["generator_seed"] for r in first.records] != [r["generator_seed"] for r in second.records]
    assert [r["prompt"] for r in first.records] == [r["prompt"] for r in second.records]
    assert pixels(folders[0]) != pixels(folders[1])
