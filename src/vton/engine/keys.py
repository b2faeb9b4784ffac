"""Key conversion between the IDM-VTON checkpoint's naming and diffusers' modules.

The checkpoint's `unet/` holds two families that a stock diffusers UNet does not name the same:
- `encoder_hid_proj.*`: the IP-Adapter-Plus Resampler in the original IP-Adapter naming;
  diffusers' `IPAdapterPlusImageProjection` holds the same weights under other names, with the
  perceiver's `to_kv` split into `to_k` and `to_v`.
- `*.attn2.processor.to_{k,v}_ip.weight`: diffusers' IP-Adapter processors hold them in lists
  (`to_k_ip.0.weight`).
"""

from __future__ import annotations

import re

import torch

RESAMPLER_PREFIX = "encoder_hid_proj."

# original suffix inside layer i -> diffusers suffix inside layer i
_LAYER_RENAMES = {
    "0.norm1.weight": "ln0.weight",
    "0.norm1.bias": "ln0.bias",
    "0.norm2.weight": "ln1.weight",
    "0.norm2.bias": "ln1.bias",
    "0.to_q.weight": "attn.to_q.weight",
    "0.to_out.weight": "attn.to_out.0.weight",
    "1.0.weight": "ff.0.weight",
    "1.0.bias": "ff.0.bias",
    "1.1.weight": "ff.1.net.0.proj.weight",
    "1.3.weight": "ff.1.net.2.weight",
}
_LAYER_RENAMES_BACK = {v: k for k, v in _LAYER_RENAMES.items()}
_TOP_LEVEL = {
    "latents",
    "proj_in.weight",
    "proj_in.bias",
    "proj_out.weight",
    "proj_out.bias",
    "norm_out.weight",
    "norm_out.bias",
}
_LAYER_KEY = re.compile(r"^layers\.(\d+)\.(.+)$")
_IP_KEY = re.compile(r"^(.+\.attn2\.processor\.to_[kv]_ip)\.weight$")
_IP_KEY_DIFFUSERS = re.compile(r"^(.+\.attn2\.processor\.to_[kv]_ip)\.0\.weight$")


def resampler_to_diffusers(original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Converts Resampler keys (without the `encoder_hid_proj.` prefix) to diffusers' names.

    Unknown keys are kept under their own name so that the strict load reports them.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in original.items():
        match = _LAYER_KEY.match(key)
        if key in _TOP_LEVEL or match is None:
            out[key] = value
            continue
        layer, rest = match.groups()
        if rest == "0.to_kv.weight":
            to_k, to_v = value.chunk(2, dim=0)
            out[f"layers.{layer}.attn.to_k.weight"] = to_k
            out[f"layers.{layer}.attn.to_v.weight"] = to_v
        else:
            out[f"layers.{layer}.{_LAYER_RENAMES.get(rest, rest)}"] = value
    return out


def resampler_from_diffusers(converted: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `resampler_to_diffusers` (used to write checkpoints in the real layout)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in converted.items():
        match = _LAYER_KEY.match(key)
        if key in _TOP_LEVEL or match is None:
            out[key] = value
            continue
        layer, rest = match.groups()
        if rest == "attn.to_k.weight":
            out[f"layers.{layer}.0.to_kv.weight"] = torch.cat(
                [value, converted[f"layers.{layer}.attn.to_v.weight"]], dim=0
            )
        elif rest != "attn.to_v.weight":
            out[f"layers.{layer}.{_LAYER_RENAMES_BACK.get(rest, rest)}"] = value
    return out


def resampler_shape(original: dict[str, torch.Tensor]) -> dict[str, int]:
    """The Resampler's hyper-parameters, read from weight shapes (dim_head is always 64)."""
    latents = original["latents"]
    depth = 1 + max(int(m.group(1)) for k in original if (m := _LAYER_KEY.match(k)))
    inner = original["layers.0.0.to_q.weight"].shape[0]
    return {
        "embed_dims": original["proj_in.weight"].shape[1],
        "hidden_dims": latents.shape[2],
        "output_dims": original["proj_out.weight"].shape[0],
        "num_queries": latents.shape[1],
        "depth": depth,
        "dim_head": 64,
        "heads": inner // 64,
        "ffn_ratio": original["layers.0.1.1.weight"].shape[0] // latents.shape[2],
    }


def ip_keys_to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`...attn2.processor.to_k_ip.weight` -> `...attn2.processor.to_k_ip.0.weight`."""
    return {_IP_KEY.sub(r"\1.0.weight", key): value for key, value in state.items()}


def ip_keys_from_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `ip_keys_to_diffusers`."""
    return {_IP_KEY_DIFFUSERS.sub(r"\1.weight", key): value for key, value in state.items()}


def split_tryon_state(
    state: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """TryonNet's checkpoint as (UNet keys in diffusers naming, Resampler keys as saved)."""
    resampler = {
        k[len(RESAMPLER_PREFIX) :]: v for k, v in state.items() if k.startswith(RESAMPLER_PREFIX)
    }
    unet = {k: v for k, v in state.items() if not k.startswith(RESAMPLER_PREFIX)}
    return ip_keys_to_diffusers(unet), resampler
