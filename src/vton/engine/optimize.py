"""GPU optimisations that keep the output, applied once at start-up and reported one by one.

Each optimisation is on or off with a reason (off on this device, failed, disabled by setting),
so the service can log exactly what runs. `EngineOptimizations.reference()` is the original
implementation's way of computing, used as the benchmark's baseline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from vton.engine.attention import (
    GarmentCaptureProcessor,
    TryonSelfAttentionProcessor,
    garment_feature_order,
)
from vton.engine.checkpoint import TryOnModel
from vton.engine.cross_projections import batch_cross_projections

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineOptimizations:
    """Switches for every optimisation; the defaults are the fast, output-preserving ones."""

    person_queries_only: bool = True  # TryonNet self-attention: no queries for garment tokens
    truncate_garment_net: bool = True  # GarmentNet stops at the last feature TryonNet reads
    # Person / garment conditioning of keyed samples kept on the device, up to this many bytes
    # (an LRU; 0: off).
    conditioning_cache_bytes: int = 2 << 30
    # Every cross-attention's keys and values in one batched matmul per weight stack instead of
    # ~420 small GEMMs per step (cross_projections.py). Keeps the output (fp16 rounding); NOTES:
    # "every cross-attention's keys and values in one batched matmul".
    batch_cross_projections: bool = True
    tf32: bool = True  # TF32 matmuls/convolutions for the fp32 work (the VAE)
    cuda_graphs: bool = True  # each step shape's network step captured once, then replayed
    sync_free_steps: bool = True  # DDPM steps that never wait for the GPU (see engine/ddpm.py)
    compile: bool = True  # regional torch.compile (resnet, transformer blocks); slow first start
    channels_last: bool = True  # NHWC for the convolutions; only with compile (eager: slower)
    # Changes the output (opt-in, never a default): GarmentNet runs once per try-on, at the first
    # timestep, and every step reuses its features (GarmentNet is ~28% of a step's FLOPs).
    garment_features_once: bool = False
    # GarmentNet for several coming timesteps in one pass of about `garment_ahead_rows` rows
    # (garment_features.py): its input does not depend on the denoising latents, so this keeps
    # the output (fp16 rounding). NOTES: "GarmentNet ahead" (one try-on -10%).
    garment_net_ahead: bool = True
    garment_ahead_rows: int = 8
    # Opt-in (memory): every timestep's GarmentNet features kept per keyed garment, up to this
    # many bytes on the device (garment_features.py); a repeat garment's try-on skips GarmentNet.
    garment_feature_cache_bytes: int = 0

    @classmethod
    def reference(cls) -> EngineOptimizations:
        """Every switch off and no conditioning cache: the original implementation's arithmetic
        and work."""
        switches = {f.name: False for f in fields(cls) if f.type == "bool"}
        return cls(**switches, conditioning_cache_bytes=0)


# The opt-in modes whose images differ from the default's (beyond fp16 noise).
OUTPUT_CHANGING = ("garment_features_once",)


@dataclass(frozen=True)
class OptimizationStatus:
    name: str
    enabled: bool
    reason: str

    def line(self) -> str:
        return f"optimisation {self.name}={'on' if self.enabled else 'off'} ({self.reason})"


def truncate_garment_net(unet: UNet2DConditionModel) -> str:
    """Drops what comes after the last garment feature: trailing up blocks without attention,
    the last attention block's upsampler, the output convolutions and the last block's attention
    output. GarmentNet's own output becomes meaningless; its features are unchanged."""
    with_attention = [i for i, b in enumerate(unet.up_blocks) if getattr(b, "attentions", None)]
    if not with_attention:
        return "no up block with attention"
    last = with_attention[-1]
    dropped = len(unet.up_blocks) - last - 1
    unet.up_blocks = nn.ModuleList(list(unet.up_blocks)[: last + 1])
    unet.up_blocks[last].upsamplers = None
    unet.conv_norm_out = None
    unet.conv_out = nn.Identity()
    last_name = garment_feature_order(unet)[-1]
    processor = unet.get_submodule(last_name).processor
    if isinstance(processor, GarmentCaptureProcessor):
        processor.capture_only = True
    return f"dropped {dropped} up block(s), an upsampler, conv_out and {last_name}'s attention"


def apply_optimizations(model: TryOnModel, opts: EngineOptimizations) -> list[OptimizationStatus]:
    """Applies `opts` to a freshly loaded model in place; returns each one's status."""
    cuda = model.device.type == "cuda"
    status: list[OptimizationStatus] = []

    def report(name: str, enabled: bool, reason: str) -> None:
        status.append(OptimizationStatus(name, enabled, reason))

    for processor in model.tryon_net.attn_processors.values():
        if isinstance(processor, TryonSelfAttentionProcessor):
            processor.person_queries_only = opts.person_queries_only
    report("person_queries_only", opts.person_queries_only, "setting")

    if opts.truncate_garment_net:
        report("truncate_garment_net", True, truncate_garment_net(model.garment_net))
    else:
        report("truncate_garment_net", False, "disabled by setting")
    report(
        "garment_features_once",
        opts.garment_features_once,
        "setting: changes the output" if opts.garment_features_once else "off by default",
    )
    if opts.garment_net_ahead:
        rows = f"GarmentNet passes of ~{opts.garment_ahead_rows} rows (timesteps x garments)"
        report("garment_net_ahead", True, rows)
    else:
        report("garment_net_ahead", False, "disabled by setting")
    if opts.garment_feature_cache_bytes > 0:
        size = f"{opts.garment_feature_cache_bytes / 2**30:.1f} GiB"
        report("garment_feature_cache", True, f"up to {size} of features per keyed garment")
    else:
        report("garment_feature_cache", False, "off by default: memory (3.1 GB per garment)")
    if opts.conditioning_cache_bytes > 0:
        size = f"{opts.conditioning_cache_bytes / 2**30:.1f} GiB"
        report("cache_conditioning", True, f"up to {size} for keyed persons and garments")
    else:
        report("cache_conditioning", False, "disabled by setting")
    if opts.batch_cross_projections:
        served = sum(batch_cross_projections(n) for n in (model.tryon_net, model.garment_net))
        report("batch_cross_projections", True, f"{served} cross-attentions, batched matmuls")
    else:
        report("batch_cross_projections", False, "disabled by setting")
    report(
        "sync_free_steps",
        opts.sync_free_steps,
        "DDPM: host timesteps, noise copied without a wait; progress one step behind"
        if opts.sync_free_steps
        else "disabled by setting",
    )

    if not opts.tf32:
        report("tf32", False, "disabled by setting")
    elif not cuda:
        report("tf32", False, "not on a CUDA device")
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        report("tf32", True, "enabled")

    if not opts.cuda_graphs:
        report("cuda_graphs", False, "disabled by setting")
    else:
        why = "one per step shape, captured at warm-up (else on first use)"
        report("cuda_graphs", cuda, why if cuda else "not on CUDA")

    compiled = False
    if opts.compile and cuda:
        try:
            count = compile_regions(model)
            compiled = True
            report("compile", True, f"regional torch.compile of {count} resnet/transformer blocks")
        except Exception as exc:  # an optimisation that fails must not stop the service
            report("compile", False, f"failed: {exc}")
    else:
        report("compile", False, "disabled by setting" if not opts.compile else "not on CUDA")

    if not opts.channels_last:
        report("channels_last", False, "disabled by setting")
    elif not compiled:
        # Measured: eager GroupNorm in NHWC costs more than the layout saves (b8 337 -> 357 ms).
        report("channels_last", False, "pays only with compile, which is off")
    else:
        for module in (model.tryon_net, model.garment_net, model.vae):
            module.to(memory_format=torch.channels_last)
        report("channels_last", True, "UNets and VAE in NHWC (no cuDNN layout transposes)")

    report(
        "sdpa",
        True,
        f"torch SDPA (flash / memory-efficient / cuDNN chosen by torch {torch.__version__})",
    )
    for s in status:
        log.info(s.line())
    return status


def compiled_block_types() -> tuple[type[nn.Module], ...]:
    from diffusers.models.attention import BasicTransformerBlock
    from diffusers.models.resnet import ResnetBlock2D

    return (ResnetBlock2D, BasicTransformerBlock)


def compile_regions(
    model: TryOnModel,
    block_types: tuple[type[nn.Module], ...] | None = None,
    backend: str = "inductor",
) -> int:
    """torch.compile of the UNets' resnet and transformer blocks and the VAE decoder's resnets,
    each in place. Returns the block count.

    Regional, not whole-network: the blocks repeat, so one compiled graph per block shape serves
    every instance (parameters are graph inputs; garment features reach the attention processors
    through per-block slots, not names, so no graph specialises on a block). The batch size is
    static for the first size seen and symbolic from the second on (Dynamo's automatic dynamic
    shapes), so warming up more batch sizes does not compile the blocks again for each.
    """
    block_types = block_types or compiled_block_types()
    torch._dynamo.config.suppress_errors = True  # a block that fails to compile runs eagerly
    for name in ("recompile_limit", "cache_size_limit"):
        # every compiled module shares nn.Module's call code, hence one cache for all blocks
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 256)
    count = 0
    for network in (model.tryon_net, model.garment_net, model.vae.decoder):
        for module in network.modules():
            if isinstance(module, block_types):
                module.compile(dynamic=None, backend=backend)
                count += 1
    return count
