"""Strict checkpoint loading and the key conversion onto diffusers' modules."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from vton.engine.checkpoint import COMPONENTS, load_model
from vton.engine.keys import (
    ip_keys_from_diffusers,
    ip_keys_to_diffusers,
    resampler_from_diffusers,
    resampler_shape,
    resampler_to_diffusers,
    split_tryon_state,
)
from vton.errors import CheckpointError

UNET_WEIGHTS = Path("unet") / "diffusion_pytorch_model.safetensors"


@pytest.fixture
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def test_loads_the_tiny_model_and_the_reference_layout(tiny_model_dir, reference_dir):
    for folder in (tiny_model_dir, reference_dir / "model"):
        model = load_model(folder)
        assert model.resampler.latents.shape[1] == 16
        assert model.vae_dtype == torch.float32  # force_upcast


def test_a_missing_and_an_extra_key_are_both_named(model_copy: Path):
    path = model_copy / UNET_WEIGHTS
    state = load_file(path)
    dropped = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.processor.to_k_ip.weight"
    del state[dropped]
    state["encoder_hid_proj.layers.0.0.bogus.weight"] = torch.zeros(2)
    save_file(state, path)
    with pytest.raises(CheckpointError) as info:
        load_model(model_copy)
    message = str(info.value)
    assert "to_k_ip.0.weight" in message and "down_blocks.1.attentions.0" in message
    assert "encoder_hid_proj.layers.0.0.bogus.weight" in message
    assert "missing" in message and "unexpected" in message


@pytest.mark.parametrize("component", ["unet_encoder", "vae", "text_encoder", "image_encoder"])
def test_every_component_is_loaded_strictly(model_copy: Path, component: str):
    path = next((model_copy / component).glob("*.safetensors"))
    state = load_file(path)
    victim = sorted(state)[0]
    del state[victim]
    save_file(state, path)
    with pytest.raises(CheckpointError, match="missing"):
        load_model(model_copy)


def test_a_missing_component_is_named(model_copy: Path):
    shutil.rmtree(model_copy / "unet_encoder")
    with pytest.raises(CheckpointError, match="unet_encoder"):
        load_model(model_copy)


def test_original_resampler_and_ip_keys_land_on_the_right_parameters(tiny_model_dir: Path):
    original = load_file(tiny_model_dir / UNET_WEIGHTS)
    model = load_model(tiny_model_dir)
    # Resampler: to_kv is split into to_k / to_v, norms and feed-forward renamed.
    resampler = model.resampler.state_dict()
    to_kv = original["encoder_hid_proj.layers.1.0.to_kv.weight"]
    inner = to_kv.shape[0] // 2
    assert torch.equal(resampler["layers.1.attn.to_k.weight"], to_kv[:inner])
    assert torch.equal(resampler["layers.1.attn.to_v.weight"], to_kv[inner:])
    assert torch.equal(
        resampler["layers.0.ln1.weight"], original["encoder_hid_proj.layers.0.0.norm2.weight"]
    )
    assert torch.equal(
        resampler["layers.0.ff.1.net.2.weight"], original["encoder_hid_proj.layers.0.1.3.weight"]
    )
    # IP weights: onto the cross-attention processor's first list entry.
    name = "up_blocks.0.attentions.2.transformer_blocks.1.attn2.processor"
    processor = model.tryon_net.get_submodule(name)
    assert torch.equal(processor.to_v_ip[0].weight, original[f"{name}.to_v_ip.weight"])


def test_key_conversion_round_trips(tiny_model_dir: Path):
    original = load_file(tiny_model_dir / UNET_WEIGHTS)
    unet, resampler = split_tryon_state(original)
    assert all(".to_k_ip.0.weight" in k for k in unet if "to_k_ip" in k)
    back = resampler_from_diffusers(resampler_to_diffusers(resampler))
    assert back.keys() == resampler.keys()
    assert all(torch.equal(back[k], resampler[k]) for k in back)
    assert ip_keys_from_diffusers(ip_keys_to_diffusers(original)).keys() == original.keys()
    shape = resampler_shape(resampler)
    assert (shape["depth"], shape["heads"], shape["num_queries"], shape["dim_head"]) == (
        2,
        2,
        16,
        64,
    )


def test_bin_weights_load_with_weights_only(model_copy: Path):
    path = model_copy / UNET_WEIGHTS
    state = load_file(path)
    path.unlink()
    torch.save(state, model_copy / "unet" / "diffusion_pytorch_model.bin")
    model = load_model(model_copy)
    key = "conv_in.weight"
    assert torch.equal(model.tryon_net.state_dict()[key], state[key])


def test_a_pickled_object_in_a_bin_file_is_refused(model_copy: Path):
    path = model_copy / "vae" / "diffusion_pytorch_model.safetensors"
    path.unlink()
    torch.save({"x": datetime.date(2026, 1, 1)}, model_copy / "vae" / "diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_model(model_copy)


def test_layout_lists_all_nine_components():
    assert len(COMPONENTS) == 9
