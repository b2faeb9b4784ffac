"""The full-size IDM-VTON model with random weights, built directly on the GPU (no files).

Shapes from idm-vton-model.md section 7 (the public SDXL / CLIP architectures the real checkpoint
is built from): its arithmetic equals the real model's. Weights are random, so images are noise.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.embeddings import IPAdapterPlusImageProjection
from transformers import (
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from vton.engine.attention import GarmentFeatureBank
from vton.engine.checkpoint import (
    TryOnModel,
    assemble_model,
    install_garment_processors,
    install_tryon_processors,
)
from vton.engine.tiny import SCHEDULER_CONFIG, clip_text_config, write_tokenizer

SDXL_UNET: dict[str, Any] = {
    "block_out_channels": [320, 640, 1280],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "layers_per_block": 2,
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 128,
}
TRYON_NET = {
    **SDXL_UNET,
    "in_channels": 13,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
GARMENT_NET = {**SDXL_UNET, "in_channels": 4, "addition_embed_type": None}
SDXL_VAE: dict[str, Any] = {
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "force_upcast": True,
}
RESAMPLER = {
    "embed_dims": 1280,
    "hidden_dims": 1280,
    "output_dims": 2048,
    "depth": 4,
    "dim_head": 64,
    "heads": 20,
    "num_queries": 16,
    "ffn_ratio": 4,
}


def build_fullsize_model(dtype: torch.dtype, device: str = "cuda") -> TryOnModel:
    """All nine components at full size, random weights, on `device` (VAE in fp32)."""
    torch.manual_seed(0)
    bank = GarmentFeatureBank()
    folder = Path(tempfile.mkdtemp(prefix="vton-tokenizer-"))
    write_tokenizer(folder / "tokenizer", pad_token="<|endoftext|>")
    write_tokenizer(folder / "tokenizer_2", pad_token="!")
    with torch.device(device):
        tryon_net = UNet2DConditionModel.from_config(TRYON_NET)
        install_tryon_processors(tryon_net, bank, num_ip_tokens=RESAMPLER["num_queries"])
        garment_net = UNet2DConditionModel.from_config(GARMENT_NET)
        install_garment_processors(garment_net, bank)
        resampler = IPAdapterPlusImageProjection(**RESAMPLER)
        vae = AutoencoderKL.from_config(SDXL_VAE)
        text_encoder = CLIPTextModel(clip_text_config(49408, 768, 12, 12, 3072, "quick_gelu"))
        text_encoder_2 = CLIPTextModelWithProjection(
            clip_text_config(49408, 1280, 32, 20, 5120, "gelu")
        )
        image_encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=1280,
                num_hidden_layers=32,
                num_attention_heads=16,
                intermediate_size=5120,
                patch_size=14,
                image_size=224,
                projection_dim=1024,
                hidden_act="gelu",
            )
        )
    return assemble_model(
        tryon_net=tryon_net,
        garment_net=garment_net,
        resampler=resampler,
        vae=vae,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"),
        scheduler_config=dict(SCHEDULER_CONFIG),
        bank=bank,
        dtype=dtype,
        device=torch.device(device),
    )
