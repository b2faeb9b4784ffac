"""fp8 matrix multiplies for the UNets' transformer blocks (opt-in: changes the output).

Hopper and Ada tensor cores multiply float8 (e4m3) at twice the fp16 rate, and the transformer
blocks' linear layers are most of a step's matmul time. Each such `nn.Linear` becomes an
`Fp8Linear`: its weight stored once in e4m3 with one scale per output channel, its input
quantised per row (token) at run time, the product by `torch._scaled_mm` with both scale vectors,
accumulated in fp32 and written in the model's dtype. Per-row scales keep one large activation
from crushing the precision of every other token; under torch.compile the row maximum and the
cast fuse into one kernel (with the LayerNorm before it).
"""

from __future__ import annotations

import torch
from torch import nn

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max
# cuBLASLt's fp8 GEMMs need both matrix dimensions that are not the token count to be multiples
# of 16; layers of other widths stay in fp16.
FP8_ALIGNMENT = 16


def fp8_supported(device: torch.device) -> tuple[bool, str]:
    """Whether this device multiplies fp8 on tensor cores, and why not when it does not."""
    if device.type != "cuda":
        return False, "not on CUDA"
    capability = torch.cuda.get_device_capability(device)
    if capability < (8, 9):
        return False, f"needs compute capability 8.9+ (Ada, Hopper), this GPU has {capability}"
    return True, f"compute capability {capability}"


def product_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """The dtype `_scaled_mm` writes: the model's, where this build's per-row scaled GEMM
    supports it (older cuBLAS / CUTLASS paths write only bfloat16; then one cast follows)."""
    a = torch.ones(16, 16, device=device).to(FP8)
    scales = torch.ones(16, 1, device=device)
    try:
        torch._scaled_mm(a, a.t(), scale_a=scales, scale_b=scales.t(), out_dtype=dtype)
    except RuntimeError:
        return torch.bfloat16
    return dtype


def _row_scales(matrix: torch.Tensor) -> torch.Tensor:
    """One fp32 scale per row, mapping the row's largest magnitude to e4m3's largest value."""
    return matrix.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX


def _to_fp8(matrix: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    return (matrix.float() / scales).clamp(-FP8_MAX, FP8_MAX).to(FP8)


class Fp8Linear(nn.Module):
    """`nn.Linear` with an e4m3 weight (per output channel scales) and per-token input scales."""

    def __init__(self, linear: nn.Linear, out_dtype: torch.dtype) -> None:
        super().__init__()
        self.out_dtype = out_dtype  # what _scaled_mm writes (see product_dtype)
        weight = linear.weight.detach()
        scales = _row_scales(weight)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", _to_fp8(weight, scales).contiguous())  # (out, in)
        self.register_buffer("weight_scale", scales.t().contiguous())  # (1, out)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).contiguous()  # cuBLASLt: row-major
        scales = _row_scales(rows)
        out = torch._scaled_mm(
            _to_fp8(rows, scales),
            self.weight.t(),  # column-major (in, out), as cuBLASLt wants the second matrix
            scale_a=scales,
            scale_b=self.weight_scale,
            out_dtype=self.out_dtype,
        ).to(x.dtype)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, e4m3"


def convert_transformer_linears(network: nn.Module) -> int:
    """Replaces every fp8-friendly `nn.Linear` inside the network's transformer blocks (attention
    projections, feed-forward, the blocks' input and output projections) in place; returns the
    count. Time embeddings and resnets stay as they are: their matmuls are a few tokens wide."""
    from diffusers.models.transformers.transformer_2d import Transformer2DModel

    parameter = next(network.parameters())
    out_dtype = product_dtype(parameter.device, parameter.dtype)
    count = 0
    for transformer in [m for m in network.modules() if isinstance(m, Transformer2DModel)]:
        for parent in list(transformer.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear) and _fp8_friendly(child):
                    setattr(parent, name, Fp8Linear(child, out_dtype))
                    count += 1
    return count


def _fp8_friendly(linear: nn.Linear) -> bool:
    return linear.in_features % FP8_ALIGNMENT == 0 and linear.out_features % FP8_ALIGNMENT == 0
