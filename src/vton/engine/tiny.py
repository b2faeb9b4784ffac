"""`vton make-tiny-model`: a random-weight IDM-VTON checkpoint in the real snapshot layout.

Same folder layout, config keys and weight names as `yisol/IDM-VTON` (the Resampler and IP keys
in the original naming, the text encoder under `text_model.`), only tiny: a 128x96 try-on runs on
a laptop CPU in well under a second. Its images are noise; it proves the plumbing. The service
runs it at its own working frame, WORKING_FRAME (written to TINY_MODEL_FRAME_FILE), unless
VTON_WIDTH / VTON_HEIGHT say otherwise.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.embeddings import IPAdapterPlusImageProjection
from safetensors.torch import save_file
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    PreTrainedModel,
)

from vton.config import TINY_MODEL_FRAME_FILE
from vton.engine.attention import GarmentFeatureBank
from vton.engine.checkpoint import install_tryon_processors
from vton.engine.keys import RESAMPLER_PREFIX, ip_keys_from_diffusers, resampler_from_diffusers

TEXT_HIDDEN = 32
IMAGE_HIDDEN = 32
CROSS_ATTENTION_DIM = 2 * TEXT_HIDDEN  # text_encoder + text_encoder_2 hidden sizes
NUM_IP_TOKENS = 16
WORKING_FRAME = (384, 512)
"""The tiny model's working frame (width, height): a 20-step try-on in ~2.5 s on a 2-core CPU,
where 768 x 1024 takes 17-38 s (bench/NOTES.md, "Session 10: embedded default")."""

UNET_CONFIG: dict[str, Any] = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": [1, 1, 2],
    "block_out_channels": [16, 24, 32],
    "cross_attention_dim": CROSS_ATTENTION_DIM,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "layers_per_block": 2,
    "transformer_layers_per_block": [1, 2, 3],
    "norm_num_groups": 8,
    "use_linear_projection": True,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "out_channels": 4,
    "sample_size": 16,
}
TRYON_CONFIG = {
    **UNET_CONFIG,
    "in_channels": 13,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": TEXT_HIDDEN + 6 * 8,
    "encoder_hid_dim_type": "ip_image_proj",
    "encoder_hid_dim": IMAGE_HIDDEN,
}
GARMENT_CONFIG = {
    **UNET_CONFIG,
    "in_channels": 4,
    "addition_embed_type": None,
    "encoder_hid_dim_type": None,
    "encoder_hid_dim": None,
}
VAE_CONFIG: dict[str, Any] = {
    "_class_name": "AutoencoderKL",
    "act_fn": "silu",
    "block_out_channels": [8, 16, 24, 32],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "force_upcast": True,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 4,
    "sample_size": 128,
    "scaling_factor": 0.13025,
}
SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "DDPMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
}
MODEL_INDEX: dict[str, Any] = {
    "_class_name": "StableDiffusionXLInpaintPipeline",
    "feature_extractor": [None, None],
    "force_zeros_for_empty_prompt": True,
    "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    "requires_aesthetics_score": False,
    "scheduler": ["diffusers", "DDPMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "unet": ["src.unet_hacked_tryon", "UNet2DConditionModel"],
    "unet_encoder": ["src.unet_hacked_garmnet", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
# Words the tokenizer's merges are learnt from: the prompts' own vocabulary.
TOKENIZER_CORPUS = (
    "model is wearing a photo of monochrome lowres bad anatomy worst quality low quality "
    "shirt t-shirt blouse dress skirt trousers jeans jacket coat sweater hoodie red blue green "
    "black white long short sleeves cotton denim striped"
)
NUM_MERGES = 64


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def learn_merges(corpus: str, count: int) -> list[tuple[str, str]]:
    """A few BPE merges learnt greedily from `corpus` (words end with `</w>`, as in CLIP)."""
    words = Counter((*tuple(w[:-1]), w[-1] + "</w>") for w in corpus.split())
    merges: list[tuple[str, str]] = []
    for _ in range(count):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, freq in words.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += freq
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        merged: Counter[tuple[str, ...]] = Counter()
        for word, freq in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += freq
        words = merged
    return merges


def write_tokenizer(folder: Path, pad_token: str) -> int:
    """Writes a byte-level CLIP BPE tokenizer; returns its vocabulary size."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    merges = learn_merges(TOKENIZER_CORPUS, NUM_MERGES)
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": pad_token,
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "clean_up_tokenization_spaces": True,
        "errors": "replace",
        **special,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return len(vocab)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def _save(folder: Path, filename: str, state: dict[str, torch.Tensor]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in state.items()}, folder / filename)


def clip_text_config(
    vocab_size: int, hidden: int, layers: int, heads: int, inner: int, act: str
) -> CLIPTextConfig:
    """A CLIP text encoder config as SDXL's: 77 positions, projection = hidden, and eos_token_id
    2, so pooling takes the argmax token id (the EOS, the highest id in the vocabulary)."""
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=inner,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        hidden_act=act,
        projection_dim=hidden,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )


def _save_transformers(
    folder: Path, model: PreTrainedModel, prefix: str, architecture: str
) -> None:
    """Saves in transformers 4's naming (`text_model.*`), which the real checkpoint uses."""
    state = {k if k.startswith(prefix) else prefix + k: v for k, v in model.state_dict().items()}
    config = model.config.to_dict()
    config["architectures"] = [architecture]
    _write_json(folder / "config.json", config)
    _save(folder, "model.safetensors", state)


def _tryon_state(bank: GarmentFeatureBank) -> dict[str, torch.Tensor]:
    overrides = {"encoder_hid_dim_type": None, "encoder_hid_dim": None}
    unet = UNet2DConditionModel.from_config({**TRYON_CONFIG, **overrides})
    install_tryon_processors(unet, bank, num_ip_tokens=NUM_IP_TOKENS)
    state = ip_keys_from_diffusers(unet.state_dict())
    resampler = IPAdapterPlusImageProjection(
        embed_dims=IMAGE_HIDDEN,
        output_dims=CROSS_ATTENTION_DIM,
        hidden_dims=128,
        depth=2,
        dim_head=64,
        heads=2,
        num_queries=NUM_IP_TOKENS,
    )
    for key, value in resampler_from_diffusers(resampler.state_dict()).items():
        state[RESAMPLER_PREFIX + key] = value
    return state


def make_tiny_model(path: str | Path, seed: int = 0) -> Path:
    """Writes the tiny checkpoint to `path` (created); returns the path."""
    path = Path(path)
    torch.manual_seed(seed)
    vocab_size = write_tokenizer(path / "tokenizer", pad_token="<|endoftext|>")
    write_tokenizer(path / "tokenizer_2", pad_token="!")
    _write_json(path / "model_index.json", MODEL_INDEX)
    width, height = WORKING_FRAME
    about = "random weights (vton make-tiny-model): its images are noise"
    _write_json(path / TINY_MODEL_FRAME_FILE, {"width": width, "height": height, "about": about})
    _write_json(path / "scheduler" / "scheduler_config.json", SCHEDULER_CONFIG)

    _write_json(path / "unet" / "config.json", TRYON_CONFIG)
    _save(path / "unet", "diffusion_pytorch_model.safetensors", _tryon_state(GarmentFeatureBank()))
    _write_json(path / "unet_encoder" / "config.json", GARMENT_CONFIG)
    garment_net = UNet2DConditionModel.from_config(GARMENT_CONFIG)
    _save(path / "unet_encoder", "diffusion_pytorch_model.safetensors", garment_net.state_dict())
    _write_json(path / "vae" / "config.json", VAE_CONFIG)
    vae = AutoencoderKL.from_config(VAE_CONFIG)
    _save(path / "vae", "diffusion_pytorch_model.safetensors", vae.state_dict())

    _save_transformers(
        path / "text_encoder",
        CLIPTextModel(
            clip_text_config(vocab_size, TEXT_HIDDEN, 2, 2, 2 * TEXT_HIDDEN, "quick_gelu")
        ),
        "text_model.",
        "CLIPTextModel",
    )
    _save_transformers(
        path / "text_encoder_2",
        CLIPTextModelWithProjection(
            clip_text_config(vocab_size, TEXT_HIDDEN, 2, 2, 2 * TEXT_HIDDEN, "gelu")
        ),
        "",
        "CLIPTextModelWithProjection",
    )
    vision = CLIPVisionConfig(
        hidden_size=IMAGE_HIDDEN,
        intermediate_size=2 * IMAGE_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=224,
        patch_size=32,
        projection_dim=24,
        hidden_act="gelu",
    )
    _save_transformers(
        path / "image_encoder",
        CLIPVisionModelWithProjection(vision),
        "",
        "CLIPVisionModelWithProjection",
    )
    return path
