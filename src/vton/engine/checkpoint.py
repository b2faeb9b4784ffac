"""Loading an IDM-VTON checkpoint folder (the `yisol/IDM-VTON` snapshot layout), strictly."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.embeddings import IPAdapterPlusImageProjection
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from vton.engine.attention import (
    GarmentCaptureProcessor,
    GarmentFeatureBank,
    TryonCrossAttentionProcessor,
    TryonSelfAttentionProcessor,
)
from vton.engine.keys import (
    RESAMPLER_PREFIX,
    resampler_shape,
    resampler_to_diffusers,
    split_tryon_state,
)
from vton.engine.weights import load_strict, read_state_dict
from vton.errors import CheckpointError

log = logging.getLogger(__name__)

COMPONENTS = (
    "unet",
    "unet_encoder",
    "vae",
    "image_encoder",
    "text_encoder",
    "text_encoder_2",
    "tokenizer",
    "tokenizer_2",
    "scheduler",
)


@dataclass
class TryOnModel:
    """The nine components of IDM-VTON, loaded, on one device, ready for inference."""

    tryon_net: UNet2DConditionModel
    garment_net: UNet2DConditionModel
    resampler: IPAdapterPlusImageProjection
    vae: AutoencoderKL
    image_encoder: CLIPVisionModelWithProjection
    text_encoder: CLIPTextModel
    text_encoder_2: CLIPTextModelWithProjection
    tokenizer: CLIPTokenizer
    tokenizer_2: CLIPTokenizer
    scheduler_config: dict[str, Any]
    bank: GarmentFeatureBank
    dtype: torch.dtype
    device: torch.device

    @property
    def vae_dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


def check_layout(path: Path) -> None:
    """Fails with one line naming what is missing from a checkpoint folder."""
    if not path.is_dir():
        raise CheckpointError(f"model folder not found: {path}")
    missing = [c for c in COMPONENTS if not (path / c).is_dir()]
    if missing:
        raise CheckpointError(f"model folder {path} is missing component(s): {', '.join(missing)}")


def read_config(folder: Path, name: str) -> dict[str, Any]:
    config_path = folder / name
    if not config_path.is_file():
        raise CheckpointError(f"{folder}: missing {name}")
    try:
        return json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{config_path}: not valid JSON: {exc}") from exc


def install_tryon_processors(
    unet: UNet2DConditionModel, bank: GarmentFeatureBank, num_ip_tokens: int
) -> None:
    """TryonNet: garment-aware self-attention and IP cross-attention in every transformer block."""
    bank.add_slots(unet)
    processors: dict[str, Any] = {}
    for name in unet.attn_processors:
        module_name = name.removesuffix(".processor")
        attn = unet.get_submodule(module_name)
        if module_name.endswith("attn1"):
            processors[name] = TryonSelfAttentionProcessor(bank, bank.slot(module_name))
        else:
            processors[name] = TryonCrossAttentionProcessor(
                hidden_size=attn.to_k.out_features,
                cross_attention_dim=attn.to_k.in_features,
                num_tokens=num_ip_tokens,
            )
    unet.set_attn_processor(processors)


def install_garment_processors(unet: UNet2DConditionModel, bank: GarmentFeatureBank) -> None:
    """GarmentNet: self-attentions record their input into `bank`, cross-attentions stay stock."""
    bank.add_slots(unet)
    processors = {
        name: (
            GarmentCaptureProcessor(bank.slot(name.removesuffix(".processor")))
            if name.endswith("attn1.processor")
            else proc
        )
        for name, proc in unet.attn_processors.items()
    }
    unet.set_attn_processor(processors)


def _build_unet(config: dict[str, Any]) -> UNet2DConditionModel:
    # The Resampler replaces diffusers' own image projection: build the UNet without one.
    overrides = {"encoder_hid_dim_type": None, "encoder_hid_dim": None}
    return UNet2DConditionModel.from_config({**config, **overrides})


def _load_tryon(folder: Path, bank: GarmentFeatureBank):
    state, resampler_state = split_tryon_state(read_state_dict(folder))
    if "latents" not in resampler_state:
        raise CheckpointError(
            f"{folder}: no IP-Adapter Resampler (encoder_hid_proj.*) in the weights"
        )
    unet = _build_unet(read_config(folder, "config.json"))
    shape = resampler_shape(resampler_state)
    install_tryon_processors(unet, bank, num_ip_tokens=shape["num_queries"])
    resampler = IPAdapterPlusImageProjection(**shape)
    problems = []
    for module, module_state, what, prefix in (
        (unet, state, "unet (TryonNet)", ""),
        (resampler, resampler_to_diffusers(resampler_state), "unet (Resampler)", RESAMPLER_PREFIX),
    ):
        try:
            load_strict(module, module_state, what, key_prefix=prefix)
        except CheckpointError as exc:
            problems.append(str(exc))
    if problems:
        raise CheckpointError("; ".join(problems))
    return unet, resampler


def _load_garment_net(folder: Path, bank: GarmentFeatureBank) -> UNet2DConditionModel:
    unet = _build_unet(read_config(folder, "config.json"))
    install_garment_processors(unet, bank)
    load_strict(unet, read_state_dict(folder), "unet_encoder (GarmentNet)")
    return unet


def _load_module(
    module: torch.nn.Module, folder: Path, what: str, prefix: str = ""
) -> torch.nn.Module:
    state = read_state_dict(folder)
    if prefix:
        state = align_base_prefix(state, set(module.state_dict()), prefix)
    load_strict(module, state, what)
    return module


def align_base_prefix(
    state: dict[str, torch.Tensor], expected: set[str], prefix: str
) -> dict[str, torch.Tensor]:
    """Adds or strips a module-name prefix where only that tells the names apart.

    transformers 4 saved CLIPTextModel as `text_model.*`; transformers 5 names it without the
    prefix. Keys matching neither way are kept as they are, so the strict load still names them.
    """
    aligned: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        stripped = key.removeprefix(prefix + ".")
        if key not in expected and stripped in expected:
            key = stripped
        elif key not in expected and f"{prefix}.{key}" in expected:
            key = f"{prefix}.{key}"
        aligned[key] = value
    return aligned


def assemble_model(**components: Any) -> TryOnModel:
    """Places, casts and freezes the components (the keyword arguments of TryOnModel).

    The VAE stays float32 when its config says force_upcast (SDXL's VAE overflows in fp16).
    """
    model = TryOnModel(**components)
    vae_dtype = torch.float32 if model.vae.config.get("force_upcast", False) else model.dtype
    modules: tuple[torch.nn.Module, ...] = (
        model.tryon_net,
        model.garment_net,
        model.resampler,
        model.image_encoder,
        model.text_encoder,
        model.text_encoder_2,
    )
    for module in modules:
        module.to(device=model.device, dtype=model.dtype).eval().requires_grad_(False)
    model.vae.to(device=model.device, dtype=vae_dtype).eval().requires_grad_(False)
    return model


def load_model(
    path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> TryOnModel:
    """Loads every component strictly; the VAE stays float32 when its config says force_upcast."""
    path = Path(path)
    check_layout(path)
    device = torch.device(device)
    bank = GarmentFeatureBank()
    try:
        tokenizer = CLIPTokenizer.from_pretrained(path / "tokenizer")
        tokenizer_2 = CLIPTokenizer.from_pretrained(path / "tokenizer_2")
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot load the CLIP tokenizers: {exc}") from exc
    text_encoder = _load_module(
        CLIPTextModel(CLIPTextConfig.from_pretrained(path / "text_encoder")),
        path / "text_encoder",
        "text_encoder",
        prefix="text_model",
    )
    text_encoder_2 = _load_module(
        CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(path / "text_encoder_2")),
        path / "text_encoder_2",
        "text_encoder_2",
    )
    image_encoder = _load_module(
        CLIPVisionModelWithProjection(CLIPVisionConfig.from_pretrained(path / "image_encoder")),
        path / "image_encoder",
        "image_encoder",
    )
    vae = _load_module(
        AutoencoderKL.from_config(read_config(path / "vae", "config.json")), path / "vae", "vae"
    )
    tryon_net, resampler = _load_tryon(path / "unet", bank)
    garment_net = _load_garment_net(path / "unet_encoder", bank)
    log.info("loaded %s (dtype %s, device %s)", path, dtype, device)
    return assemble_model(
        tryon_net=tryon_net,
        garment_net=garment_net,
        resampler=resampler,
        vae=vae,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        scheduler_config=read_config(path / "scheduler", "scheduler_config.json"),
        bank=bank,
        dtype=dtype,
        device=device,
    )
