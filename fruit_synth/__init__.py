"""Can generated images (copy-paste, Stable Diffusion) train a fruit classifier that works on real photos? A reproducible study, end to end.

Modules:

- `fruit_synth.core.images`: Safe image I/O: open and verify, EXIF orientation, colour-mode conversion, size limits, atomic writes, hashes, folder scans.
- `fruit_synth.core.outputs`: The folders a command owns: a marker file, refusing folders that hold anything else, and runs built beside their folder and moved into place when complete.
- `fruit_synth.core.processes`: What every process the tool starts does first: keep large buffers instead of handing them back to the system, and start no more workers than the machine can run.
- `fruit_synth.core.settings`: Read the experiment settings from `settings.ini`: profiles, `key=value` overrides, and validation with errors a user can act on.
- `fruit_synth.data.demo`: A small, deterministic, offline world of fruit photos, cut-outs and backgrounds, planned and written to disk, so the whole study runs where nothing real can be downloaded.
- `fruit_synth.data.demo_render`: Photo-like fruits, their shading and shadows, the table, plain-background photos and fruit-free backgrounds, rendered with numpy: the pictures of the demo world.
- `fruit_synth.data.masks`: The cut-out library: RGBA fruit cut-outs per class, from RGBA files, from photos on a plain background, or from a photo plus a mask file.
- `fruit_synth.data.sources`: The real photos, the backgrounds and the test sample: class-folder layouts, deterministic sampling, and the leakage check.
- `fruit_synth.generate.copy_paste`: Paste real fruit cut-outs onto fruit-free backgrounds: the compositing core of the study's strongest generator.
- `fruit_synth.generate.datasets`: Dataset folders for every variant: deterministic, parallel, resumable generation, manifests, hybrid mixing and train/val splits.
- `fruit_synth.generate.diffusion`: Text-to-image training images from a diffusers pipeline: per-image seeds, batches, regeneration of blocked images, scale-out with accelerate.
- `fruit_synth.generate.scenes`: Fruit for sale fills the frame: crates and bins of one class, lit from above, taken with a phone. This module makes such scenes from the cut-outs, and the camera that takes every copy-paste picture.
- `fruit_synth.learn.batches`: Images as batches of uint8 tensors, decoded once and kept within a memory budget; a model run over them; the checkpoint a kept model is saved as.
- `fruit_synth.learn.probe`: A frozen ImageNet backbone's pooled features, computed once per image and cached on disk, and a multinomial logistic regression on top: a training run in seconds, so that curves over many settings are cheap.
- `fruit_synth.learn.run`: One run, from its training sets and test photos to its typed result: training as `train_mode` says, the same function for the report's notebook, the command line, the studies and the sweeps.
- `fruit_synth.learn.train`: The study's training recipe, fast on a CPU: decode once, augment whole batches, one model per epoch count, keep the best by validation.
- `fruit_synth.study.ablations`: The studies that chose the profiles' settings: each ingredient of the scenes and of the training recipe switched in turn, generated again and trained for several seeds, scored on the profile's real photos, and a check of how much choosing on those photos flatters the choice.
- `fruit_synth.study.runs`: One executor for every run of a study: in this process, on a Dask `LocalCluster`, or on a cluster given by address.
- `fruit_synth.study.sweep`: Grids of runs over settings: how test accuracy on real photos grows with the number of generated images, the cut-outs, or a few real photos. Resumable, reusing every dataset and run whose settings are unchanged, with a curve per varied setting."""

__version__ = "0.0.1"
