"""fp8 linear layers: the scales are applied the right way round, the error is fp8's, and only the
transformer blocks' layers are converted."""

from __future__ import annotations

import torch
from torch import nn

from tests.engine.test_pipeline import OPTIONS, sample
from vton.engine.checkpoint import load_model
from vton.engine.fp8 import FP8, Fp8Linear, convert_transformer_linears
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def powers_of_two(rows: int, cols: int, seed: int) -> torch.Tensor:
    """Entries in {0, +-1, +-2, +-4}, each row's largest 4: exact in e4m3 after scaling."""
    g = torch.Generator().manual_seed(seed)
    values = torch.tensor([0.0, 1.0, -1.0, 2.0, -2.0, 4.0, -4.0])
    matrix = values[torch.randint(0, len(values), (rows, cols), generator=g)]
    matrix[:, 0] = 4.0
    return matrix


@torch.no_grad()
def test_fp8_linear_is_exact_where_e4m3_is_exact():
    linear = nn.Linear(32, 48)
    linear.weight.copy_(powers_of_two(48, 32, seed=0))
    linear.weight[::2] *= 8.0  # output channels of different scales
    x = powers_of_two(10, 32, seed=1) / 16.0
    x[::3] *= 64.0  # tokens of different scales
    x = x.reshape(2, 5, 32)
    fp8 = Fp8Linear(linear, torch.float32)
    assert fp8.weight.dtype == FP8
    got = fp8(x)
    assert got.shape == (2, 5, 48)
    assert torch.allclose(got, linear(x), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_fp8_linear_error_is_fp8_rounding():
    torch.manual_seed(0)
    linear = nn.Linear(64, 96)
    x = torch.randn(3, 7, 64) * torch.logspace(-2, 2, 7).reshape(1, 7, 1)  # tokens of any size
    error = rel_l2(Fp8Linear(linear, torch.float32)(x), linear(x))
    assert 1e-3 < error < 0.06  # e4m3: 3 mantissa bits, ~2-3% per product


def test_only_transformer_block_linears_are_converted(tiny_model_dir):
    model = load_model(tiny_model_dir)
    unet = model.tryon_net
    count = convert_transformer_linears(unet)
    converted = [name for name, m in unet.named_modules() if isinstance(m, Fp8Linear)]
    assert len(converted) == count > 0
    assert all(".attentions." in name for name in converted)
    assert isinstance(unet.time_embedding.linear_1, nn.Linear)
    for name, module in unet.named_modules():
        if isinstance(module, nn.Linear) and ".transformer_blocks." in name:
            assert module.in_features % 16 or module.out_features % 16, name


def test_fp8_try_on_is_close_to_the_default_but_not_equal(tiny_model_dir):
    default = TryOnPipeline(load_model(tiny_model_dir))
    fp8_model = load_model(tiny_model_dir)
    for network in (fp8_model.tryon_net, fp8_model.garment_net):
        convert_transformer_linears(network)
    fp8 = TryOnPipeline(fp8_model)
    batch = [sample(0, 0, seed=3)]
    expected, got = default(batch, OPTIONS)[0].image, fp8(batch, OPTIONS)[0].image
    assert 0 < rel_l2(got, expected) < 0.1


def test_fp8_setting_is_reported_off_where_the_device_has_no_fp8(tiny_model_dir):
    pipeline = TryOnPipeline(load_model(tiny_model_dir), EngineOptimizations(fp8_linear=True))
    status = {s.name: s for s in pipeline.optimization_status}["fp8_linear"]
    assert not status.enabled and status.reason == "wanted, but not on CUDA"
    assert not any(isinstance(m, Fp8Linear) for m in pipeline.model.tryon_net.modules())
