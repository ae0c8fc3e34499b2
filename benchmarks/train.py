"""Training and evaluation speed: the project's loop against a plain torchvision loop and against the compute bound.

Training: one epoch over 1000 generated images (200 per class, copy-paste from the real cut-outs and backgrounds in
../shared/data or $FRUIT_SYNTH_DATA) at 224 px with ResNet18. Evaluation: 5000 test images (the ~245 real
supermarket photos, linked under distinct names until there are 1000 per class, so every one is decoded).
ResNet18 starts from random weights: its ImageNet weights cannot be downloaded here, and speed does not depend on them.

- project: `train.fit_epoch` on a cold `ImageStore` (decoding included), and a second, warm epoch (from the cache);
  `batches.predict` on a cold store for evaluation;
- plain: torchvision `ImageFolder` over the same files, per-sample transforms (resize, the same rotation, blur and
  flips), `DataLoader` with 2 workers, the default memory format;
- compute bound: the project's model and memory format on ready random tensors (forward + backward + step for
  training, forward only for evaluation), same batch sizes.

Goals (training and evaluation): project >= 1.5x plain, and >= 85% of the compute bound.

    .venv/bin/python benchmarks/train.py [--train-per-class 200] [--test-images 5000] [--size 224]
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

from fruit_synth.core.processes import wait_passively

wait_passively()  # first: OpenMP reads how its threads wait when torch loads, as the command has it
import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torchvision import transforms

from fruit_synth.core.settings import load_settings
from fruit_synth.generate.datasets import load_dataset
from fruit_synth.generate.variants import generate_variant
from fruit_synth.learn import batches, train
from fruit_synth.learn.models import backbone_spec, classifier

DATA = Path(os.environ.get("FRUIT_SYNTH_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
BATCH, EVAL_BATCH = 32, 64


def parts(model, steps):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-4, total_steps=steps)


def project_training(files, labels, settings) -> tuple[float, float]:
    "Seconds for the project's first (cold: decoding) and second (warm) epoch."
    spec = backbone_spec("resnet18")
    split = batches.Split(files, labels, batches.ImageStore(files, settings.image_size, settings.cache_mb))
    model = classifier("resnet18", 5, pretrained=False).to(memory_format=torch.channels_last)
    optimizer, schedule = parts(model, 2 * (len(files) // BATCH + 1))
    scaler, generator, device = torch.amp.GradScaler("cuda", enabled=False), torch.Generator().manual_seed(0), torch.device("cpu")
    times = []
    for _ in range(2):
        start = time.perf_counter()
        train.fit_epoch(model, split, spec, settings, optimizer, schedule, scaler, generator, device)
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def plain_training(folder: Path, size: int) -> float:
    "Seconds for one epoch of a textbook torchvision loop."
    augment = transforms.Compose([transforms.Resize((size, size)), transforms.RandomRotation(30),
                                  transforms.GaussianBlur(5, (0.1, 2.0)), transforms.RandomHorizontalFlip(),
                                  transforms.RandomVerticalFlip(), transforms.ToTensor(),
                                  transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    dataset = torchvision.datasets.ImageFolder(folder, augment)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=2)
    model = torchvision.models.resnet18(num_classes=5)
    optimizer, schedule = parts(model, len(loader))
    model.train()
    start = time.perf_counter()
    for inputs, targets in loader:
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return time.perf_counter() - start


def compute_training(count: int, size: int) -> float:
    "Seconds for forward + backward + step of the project's model on ready tensors, `count` images."
    model = classifier("resnet18", 5, pretrained=False).to(memory_format=torch.channels_last).train()
    optimizer, schedule = parts(model, count // BATCH + 1)
    inputs = torch.randn(BATCH, 3, size, size).contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, 5, (BATCH,))
    start = time.perf_counter()
    for first in range(0, count, BATCH):
        batch = min(BATCH, count - first)
        loss = F.cross_entropy(model(inputs[:batch]), targets[:batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return time.perf_counter() - start


def project_evaluation(files, size: int) -> float:
    model = classifier("resnet18", 5, pretrained=False).to(memory_format=torch.channels_last)
    store = batches.ImageStore(files, size)
    start = time.perf_counter()
    batches.predict(model, store, backbone_spec("resnet18"), torch.device("cpu"), EVAL_BATCH)
    return time.perf_counter() - start


def plain_evaluation(folder: Path, size: int) -> float:
    preprocess = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(),
                                     transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    loader = torch.utils.data.DataLoader(torchvision.datasets.ImageFolder(folder, preprocess), batch_size=EVAL_BATCH, num_workers=2)
    model = torchvision.models.resnet18(num_classes=5).eval()
    start = time.perf_counter()
    with torch.no_grad():
        for inputs, _ in loader: model(inputs).argmax(1)
    return time.perf_counter() - start


def compute_evaluation(count: int, size: int) -> float:
    model = classifier("resnet18", 5, pretrained=False).to(memory_format=torch.channels_last).eval()
    inputs = torch.randn(EVAL_BATCH, 3, size, size).contiguous(memory_format=torch.channels_last)
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, count, EVAL_BATCH): model(inputs[:min(EVAL_BATCH, count - first)]).argmax(1)
    return time.perf_counter() - start


def test_folder(out: Path, count: int) -> list[Path]:
    "`count` test files (the real photos linked under distinct names, cycling), a folder per class."
    photos = {cls.name: sorted(cls.glob("*.jpg")) for cls in sorted((DATA / "photos").iterdir()) if cls.is_dir()}
    files = []
    for name, paths in photos.items():
        (out / name).mkdir(parents=True)
        for index in range(count // len(photos)):
            target = out / name / f"{index:05d}.jpg"
            os.link(paths[index % len(paths)], target)
            files.append(target)
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--test-images", type=int, default=5000)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    threads = batches.use_threads(0)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    settings = load_settings("grocery", {"image_size": args.size, "n_per_class": args.train_per_class, "work_dir": str(work),
                                         "batch_size": BATCH})
    start = time.perf_counter()
    folder = generate_variant(settings, "copy_paste", work / "datasets", progress=False)
    dataset = load_dataset(folder)
    files = [path for path, _ in dataset.files()]
    labels = np.array([settings.classes.index(cls) for _, cls in dataset.files()])
    tests = test_folder(work / "test", args.test_images)
    print(f"{len(files)} training images at {args.size} px made in {time.perf_counter() - start:.0f} s; {len(tests)} test "
          f"images; torch {torch.__version__}, {threads} threads, {os.cpu_count()} cores; load average {os.getloadavg()}")
    rows = {}
    cold, warm = project_training(files, labels, settings)
    rows["train: project (cold epoch)"] = (len(files), cold)
    rows["train: project (warm epoch)"] = (len(files), warm)
    rows["train: plain torchvision"] = (len(files), plain_training(folder, args.size))
    rows["train: compute bound"] = (len(files), compute_training(len(files), args.size))
    print(f"load average after training: {os.getloadavg()}", flush=True)
    rows["eval: project"] = (len(tests), project_evaluation(tests, args.size))
    rows["eval: plain torchvision"] = (len(tests), plain_evaluation(work / "test", args.size))
    rows["eval: compute bound"] = (len(tests), compute_evaluation(len(tests), args.size))
    print(f"load average after evaluation: {os.getloadavg()}")
    print(f"\n{'loop':<30}{'images':>8}{'seconds':>10}{'images/s':>10}")
    speed = {}
    for name, (count, seconds) in rows.items():
        speed[name] = count / seconds
        print(f"{name:<30}{count:>8}{seconds:>10.1f}{speed[name]:>10.1f}")
    print("\nratios (goal: >= 1.5x plain, >= 0.85 of the compute bound)")
    for kind, project in (("train", "train: project (cold epoch)"), ("train", "train: project (warm epoch)"), ("eval", "eval: project")):
        print(f"{project:<30} {speed[project] / speed[f'{kind}: plain torchvision']:5.2f}x plain   "
              f"{speed[project] / speed[f'{kind}: compute bound']:5.2f} of compute bound")


if __name__ == "__main__":
    main()
