"""Stable Diffusion 1.5 generation speed on one CUDA GPU: the pipeline's defaults against fp16 + batches + compile.

Builds the full-size SD 1.5 architecture from its published configuration with random weights (no download: speed
does not depend on the weights' values, nor on the tokenizer's vocabulary), then times 512x512 images with 25 steps
and classifier-free guidance, and prints images/s and the ratios to the baseline:

  (a) the pipeline's defaults: fp32, batch 1 (diffusers' default attention processor, printed)
  (b) fp16 + scaled-dot-product attention, batch 8 and batch 16
  (c) (b) + torch.compile of the UNet, skipped with a reason if compiling takes over --compile-budget seconds

Goal on an H100: (b) or (c) >= 5x (a) and >= 8 images/s. Total run about 5-8 minutes; --quick for a smoke run.

    .venv/bin/python benchmarks/sd_throughput.py [--quick] [--compile-budget 180]
    .venv/bin/python benchmarks/sd_throughput.py --device cpu --tiny    # dry run of the script's own parts, no GPU
"""
import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tiny_sd import tiny_tokenizer  # noqa: E402  (a tiny byte-level vocabulary: speed does not depend on it)

PROMPT, NEGATIVE = "a photo of whole kiwis on the table. top view", "sliced, halved, cut"


def unet_config(tiny: bool = False) -> dict:
    "SD 1.5's UNet2DConditionModel configuration (or a tiny one of the same shape, for a dry run)."
    if tiny:
        return dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                    cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8)
    return dict(sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768, attention_head_dim=8,
                act_fn="silu", norm_num_groups=32, norm_eps=1e-5, center_input_sample=False, downsample_padding=1,
                flip_sin_to_cos=True, freq_shift=0, mid_block_scale_factor=1)


def vae_config(tiny: bool = False) -> dict:
    "SD 1.5's AutoencoderKL configuration."
    channels = (16, 32) if tiny else (128, 256, 512, 512)
    return dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=channels, layers_per_block=1 if tiny else 2,
                down_block_types=("DownEncoderBlock2D",) * len(channels), up_block_types=("UpDecoderBlock2D",) * len(channels),
                act_fn="silu", norm_num_groups=8 if tiny else 32, sample_size=64 if tiny else 512, scaling_factor=0.18215)


def text_config(vocab_size: int, tiny: bool = False) -> dict:
    "SD 1.5's CLIP ViT-L/14 text encoder configuration (vocab 49408, 77 positions)."
    size = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2) if tiny else \
        dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
    return dict(vocab_size=max(vocab_size, 49408), max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
                bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1, **size)


def build_pipeline(device: str, dtype: torch.dtype, tiny: bool = False):
    "The SD 1.5 architecture with random weights, no safety checker, on `device` in `dtype`."
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    tokenizer = tiny_tokenizer(max_length=77)
    with torch.device(device):  # create the weights on the device directly: faster, and no 4 GB on the host
        unet = UNet2DConditionModel(**unet_config(tiny))
        vae = AutoencoderKL(**vae_config(tiny))
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_config(len(tokenizer), tiny)))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                              steps_offset=1, set_alpha_to_one=False, num_train_timesteps=1000)
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipeline = pipeline.to(device=device, dtype=dtype)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def generate(pipeline, batch: int, steps: int, size: int, seed: int = 0) -> None:
    "One pipeline call of `batch` images with guidance, one seeded generator per image (as the product does)."
    noise = [torch.Generator("cpu").manual_seed(seed + offset) for offset in range(batch)]
    pipeline(prompt=[PROMPT] * batch, negative_prompt=[NEGATIVE] * batch, num_inference_steps=steps, guidance_scale=7.5,
             height=size, width=size, generator=noise, output_type="pil")


def images_per_second(pipeline, batch: int, steps: int, size: int, calls: int, device: str) -> float:
    "Images/s over `calls` timed calls after one warm-up call."
    generate(pipeline, batch, steps, size)
    if device.startswith("cuda"): torch.cuda.synchronize()
    start = time.perf_counter()
    for call in range(calls): generate(pipeline, batch, steps, size, seed=call * batch)
    if device.startswith("cuda"): torch.cuda.synchronize()
    return batch * calls / (time.perf_counter() - start)


def compile_within(pipeline, budget: float, batch: int, steps: int, size: int) -> str | None:
    "Compile the UNet and run one warm-up call; None when done within `budget` seconds, else the reason it was skipped."
    outcome: dict = {}
    def work():
        try:
            pipeline.unet = torch.compile(pipeline.unet, mode="max-autotune-no-cudagraphs", fullgraph=True)
            generate(pipeline, batch, steps, size)
            outcome["ok"] = True
        except Exception as error:  # a compiler failure is a result to print, not a crash of the benchmark
            outcome["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    thread = threading.Thread(target=work, daemon=True)
    start = time.perf_counter()
    thread.start()
    thread.join(budget)
    if thread.is_alive(): return f"compiling took over {budget:.0f} s (budget); skipped"
    if "error" in outcome: return f"torch.compile failed: {outcome['error']}"
    print(f"  compiled in {time.perf_counter() - start:.0f} s", flush=True)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer steps and calls, batch 8 only, no compile")
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu only together with --tiny")
    parser.add_argument("--tiny", action="store_true", help="tiny model of the same shape: a dry run of the script itself")
    parser.add_argument("--compile-budget", type=float, default=180, help="seconds allowed for torch.compile (default 180)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("sd_throughput: no CUDA device is visible; this benchmark measures GPU generation. Run it on a machine with "
              "an NVIDIA GPU (or `--device cpu --tiny` for a dry run of the script).", file=sys.stderr)
        return 2
    if args.device == "cpu" and not args.tiny:
        print("sd_throughput: full-size SD on the CPU takes minutes per image; use --tiny with --device cpu", file=sys.stderr)
        return 2
    steps = 3 if args.quick or args.tiny else args.steps
    size = 64 if args.tiny else args.size
    calls = 1 if args.quick or args.tiny else 2
    half = torch.float32 if args.device == "cpu" else torch.float16
    if args.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    print(f"{size}x{size}, {steps} steps, guidance 7.5, random weights{' (tiny model)' if args.tiny else ''}", flush=True)
    rows: list[tuple[str, float | None, str]] = []

    from diffusers.models.attention_processor import AttnProcessor2_0
    pipeline = build_pipeline(args.device, torch.float32, args.tiny)  # diffusers' own defaults (its attention included)
    attention = type(pipeline.unet.attn_processors[next(iter(pipeline.unet.attn_processors))]).__name__
    rows.append((f"(a) defaults: fp32, {attention}, batch 1", images_per_second(pipeline, 1, steps, size, calls, args.device), ""))
    print(f"  {rows[-1][0]}: {rows[-1][1]:.2f} img/s", flush=True)
    del pipeline
    if args.device.startswith("cuda"): torch.cuda.empty_cache()

    pipeline = build_pipeline(args.device, half, args.tiny)
    pipeline.unet.set_attn_processor(AttnProcessor2_0())
    pipeline.vae.set_attn_processor(AttnProcessor2_0())
    batches = [8] if args.quick else [8, 16]
    for batch in batches:
        try: speed = images_per_second(pipeline, batch, steps, size, calls, args.device)
        except torch.cuda.OutOfMemoryError:
            speed = None
            torch.cuda.empty_cache()
        rows.append((f"(b) {str(half).split('.')[-1]} + SDPA, batch {batch}", speed, "" if speed else "out of memory"))
        print(f"  {rows[-1][0]}: {speed or 0:.2f} img/s", flush=True)
    best_batch = max((row for row in rows[1:] if row[1]), key=lambda row: row[1], default=(None, None, ""))[0]
    if args.quick or args.tiny:
        rows.append(("(c) (b) + torch.compile(unet)", None, "skipped in a quick or tiny run"))
    elif best_batch:
        batch = int(best_batch.rsplit(" ", 1)[1])
        reason = compile_within(pipeline, args.compile_budget, batch, steps, size)
        speed = None if reason else images_per_second(pipeline, batch, steps, size, calls, args.device)
        rows.append((f"(c) (b) + torch.compile(unet), batch {batch}", speed, reason or ""))

    baseline = rows[0][1]
    print(f"\n{'configuration':<46} {'img/s':>8} {'vs (a)':>8}")
    for name, speed, note in rows:
        print(f"{name:<46} {(f'{speed:.2f}' if speed else '-'):>8} {(f'{speed / baseline:.1f}x' if speed else '-'):>8}  {note}")
    best = max((speed for _, speed, _ in rows[1:] if speed), default=0)
    print(f"\nbest: {best:.2f} img/s = {best / baseline:.1f}x (a); goal on an H100: >= 5x (a) and >= 8 img/s: "
          f"{'met' if best / baseline >= 5 and best >= 8 else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
