"""Can generated images (copy-paste, Stable Diffusion) train a fruit classifier that works on real photos? A reproducible study, end to end.

Modules:

- `fruit_synth.core.processes`: What every process the tool starts does first: keep large buffers instead of handing them back to the system, and start no more workers than the machine can run."""

__version__ = "0.0.1"
