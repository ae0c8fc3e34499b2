"""A tiny, randomly initialised Stable Diffusion pipeline saved as a folder, for tests and notebook examples.

It has the layout of a real checkpoint (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/,
feature_extractor/, safety_checker/), so the product loads it with the same `from_pretrained(sd_model)` call
it uses for real weights. Its images are noise: the weights are random. Not product code.
"""
import json
from pathlib import Path

import torch


def byte_unicode() -> dict[int, str]:
    "CLIP's reversible map from bytes to printable unicode characters."
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, characters)))


def tiny_vocabulary() -> dict[str, int]:
    "A minimal byte-level BPE vocabulary: every byte, every byte ending a word, the two special tokens (no merges)."
    symbols = list(byte_unicode().values())
    tokens = symbols + [symbol + "</w>" for symbol in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {token: number for number, token in enumerate(tokens)}


def write_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    "The minimal vocabulary as CLIP's vocab.json and merges.txt, for tokenizer versions that read files."
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    vocab.write_text(json.dumps(tiny_vocabulary()))
    merges.write_text("#version: 0.2\n")
    return vocab, merges


def tiny_tokenizer(max_length: int = 77):
    "A CLIPTokenizer over the minimal vocabulary (words fall back to characters), padded to `max_length`."
    from transformers import CLIPTokenizer
    return CLIPTokenizer(vocab=tiny_vocabulary(), merges=[], model_max_length=max_length)


def tiny_components(folder: Path, safety_checker: bool = True, seed: int = 0) -> dict:
    "The components of a tiny SD pipeline with random weights (seeded)."
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=64)
    tokenizer = tiny_tokenizer()
    text_config = CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                 vocab_size=len(tokenizer), max_position_embeddings=77, bos_token_id=len(tokenizer) - 2,
                                 eos_token_id=len(tokenizer) - 1, pad_token_id=len(tokenizer) - 1, projection_dim=32)
    text_encoder = CLIPTextModel(text_config)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                              steps_offset=1, set_alpha_to_one=False)
    feature_extractor = CLIPImageProcessor(crop_size=32, size=32)
    checker = None
    if safety_checker:
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                      patch_size=8)
        config = CLIPConfig(text_config=text_config.to_dict(), vision_config=vision, projection_dim=32)
        checker = StableDiffusionSafetyChecker(config).eval()
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
                feature_extractor=feature_extractor, safety_checker=checker, image_encoder=None)


def save_tiny_pipeline(folder: str | Path, safety_checker: bool = True, seed: int = 0) -> Path:
    "Build the tiny pipeline and save it to `folder` with `save_pretrained`; return the folder."
    from diffusers import StableDiffusionPipeline
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    components = tiny_components(folder, safety_checker, seed)
    pipeline = StableDiffusionPipeline(**components, requires_safety_checker=safety_checker)
    pipeline.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    import sys
    print(save_tiny_pipeline(sys.argv[1]))
