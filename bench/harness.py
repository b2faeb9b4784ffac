"""What every benchmark shares: timers, test images and try-on samples, the full-size IDM-VTON
with random weights, peak memory, PSNR, and writing a section of bench/RESULTS.md.

The engine is reached only through `TryOnPipeline(model, EngineOptimizations(...))`, its call,
`warm_up` and the counters in `engine_counters`: after an engine change, this module's
"engine" section is the one place to adapt.
"""

from __future__ import annotations

import gc
import io
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.embeddings import IPAdapterPlusImageProjection
from PIL import Image
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
    load_model,
)
from vton.engine.devices import quiet_model_libraries
from vton.engine.gc_pause import freeze_start_up_objects, release_start_up_objects
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.tiny import SCHEDULER_CONFIG, clip_text_config, make_tiny_model, write_tokenizer
from vton.engine.types import DiffusionOptions, TryOnSample
from vton.store.png import encode_png

OUT = Path(os.environ.get("OUT", "var/bench"))
"""Where a benchmark writes its details ($OUT on the device machine)."""
RESULTS = Path(__file__).with_name("RESULTS.md")
FULL_SIZE = (768, 1024)
TINY_SIZE = (96, 128)

quiet_model_libraries()

# -- timing -------------------------------------------------------------------------------------


def sync() -> None:
    """Waits for the current CUDA device, if there is one (a no-op on a CPU machine)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of `fn()` over `repeats` runs after `warmup` runs, the GPU
    synchronised before each clock read."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float:
    """Peak GPU memory allocated since the last reset, in GiB (0 on a CPU machine)."""
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def matmul_tflops(dtype: torch.dtype, n: int = 8192) -> float:
    """The card's measured matrix-product rate (a ceiling to read the other numbers against)."""
    a, b = (torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2))
    return 2 * n**3 / timed(lambda: a @ b, repeats=20, warmup=3) / 1e12


def machine() -> str:
    host = f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}"
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, {host}, torch {torch.__version__}"
    return f"{host}, torch {torch.__version__}"


# -- images and samples -------------------------------------------------------------------------


def noise_image(seed: int, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Uniform random bytes: the worst case for PNG, and what random weights produce anyway."""
    width, height = size
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)


def photo_like(seed: int, size: tuple[int, int] = FULL_SIZE, mode: str = "RGB") -> Image.Image:
    """Smooth shapes plus sensor-like noise: PNG sizes close to a real photo's."""
    rng = np.random.default_rng(seed)
    bands = 3 if mode == "RGB" else 1
    coarse = Image.fromarray(rng.integers(0, 256, (16, 12, bands), dtype=np.uint8).squeeze())
    smooth = np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    noisy = smooth + rng.integers(-3, 4, smooth.shape, dtype=np.int16)
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8), mode=mode)


class Samples:
    """Try-on samples over a fixed set of noise people and garments: person i is image 10 + i,
    mask 100 + i and pose 200 + i; garment g is image 300 + g (numpy seeds)."""

    def __init__(self, size: tuple[int, int], persons: int = 4, garments: int = 16) -> None:
        self.size = size
        self.persons = [
            (noise_image(10 + i, size), noise_image(100 + i, size, "L"), noise_image(200 + i, size))
            for i in range(persons)
        ]
        self.garments = [noise_image(300 + g, size) for g in range(garments)]

    def one(self, person: int, garment: int, keyed: bool, seed: int = 42) -> TryOnSample:
        """Keyed samples name their person and garment (as the service's stored artifacts do),
        so the engine may cache their conditioning; unkeyed ones (inline images) are encoded
        per request."""
        image, mask, pose = self.persons[person % len(self.persons)]
        return TryOnSample(
            person=image,
            mask=mask,
            pose=pose,
            garment=self.garments[garment % len(self.garments)],
            description=f"a garment number {garment}",
            seed=seed,
            person_key=f"p{person}:v1" if keyed else None,
            garment_key=f"g{garment}:v1" if keyed else None,
        )

    def garments_on_one_person(self, count: int, keyed: bool, first: int = 0) -> list[TryOnSample]:
        return [self.one(0, g, keyed, seed=g) for g in range(first, first + count)]

    def mixed(self, count: int, keyed: bool, first: int = 0) -> list[TryOnSample]:
        """`count` samples over the people and garments in turn (distinct seeds)."""
        return [self.one(i, i, keyed, seed=i) for i in range(first, first + count)]


def psnr(a: bytes, b: bytes) -> tuple[int, float]:
    """Max abs difference and PSNR (dB) of two 8-bit PNGs."""
    x = np.asarray(Image.open(io.BytesIO(a)), dtype=np.float64)
    y = np.asarray(Image.open(io.BytesIO(b)), dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return int(np.abs(x - y).max()), (math.inf if mse == 0 else 10 * math.log10(255**2 / mse))


# -- the full-size model ------------------------------------------------------------------------
# Shapes from idm-vton-model.md section 7 (the public SDXL / CLIP architectures the real
# checkpoint is built from): its arithmetic equals the real model's; its images are noise.

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
    """All nine components at full size, random weights, built on `device` (no files; the VAE
    in fp32 as its force_upcast config says)."""
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


def build_tiny_model(dtype: torch.dtype, device: str) -> TryOnModel:
    """The tests' tiny checkpoint: checks a benchmark's logic where no GPU is at hand."""
    return load_model(make_tiny_model(Path(tempfile.mkdtemp()) / "tiny"), dtype, device)


# -- the engine ---------------------------------------------------------------------------------


def make_pipeline(model: TryOnModel, optimizations: EngineOptimizations) -> TryOnPipeline:
    """A pipeline on a freshly built model: the optimisations change the model in place
    (truncation, batched projections, compile, layout), so a model serves one pipeline."""
    return TryOnPipeline(model, optimizations)


def warm_up(pipeline: TryOnPipeline, max_batch: int, size: tuple[int, int]) -> dict[int, float]:
    """The service's warm-up: every batch size up to `max_batch` at the working size."""
    width, height = size
    return pipeline.warm_up(range(1, max_batch + 1), DiffusionOptions(height=height, width=width))


def engine_counters(pipeline: TryOnPipeline) -> dict[str, int | None]:
    """The step dispatcher's counters: CUDA graphs captured, and steps run eagerly because no
    graph was warmed for their shape (None where the engine does not count them)."""
    graphs = pipeline.graphs
    return {
        "cuda_graphs": len(graphs) if graphs is not None else 0,
        "eager_steps": getattr(graphs, "eager_steps", None),
    }


def diffusion_options(
    size: tuple[int, int], steps: int, guidance_scale: float = 2.0
) -> DiffusionOptions:
    width, height = size
    return DiffusionOptions(steps=steps, guidance_scale=guidance_scale, height=height, width=width)


def tryon(
    pipeline: TryOnPipeline, samples: list[TryOnSample], options: DiffusionOptions
) -> tuple[list[bytes], dict[str, float]]:
    """Server time from artifacts to PNG bytes: the pipeline, then each image encoded in turn
    (as the service's finisher thread does). Returns the PNGs and the pipeline's phase
    timings (encode, diffusion, decode; ms) with the PNG encoding's."""
    outputs = pipeline(samples, options)
    start = time.perf_counter()
    pngs = [encode_png(output.pil) for output in outputs]
    phases = dict(outputs[0].timings_ms)
    phases["png"] = (time.perf_counter() - start) * 1e3
    return pngs, phases


@dataclass
class StartUp:
    pipeline: TryOnPipeline
    build_s: float
    warm_up_s: float
    warm_up_ms: dict[int, float]
    gc_full_collection_ms: float


def start_up(
    build: Callable[[], TryOnModel],
    optimizations: EngineOptimizations,
    max_batch: int,
    size: tuple[int, int],
    warm: bool = True,
) -> StartUp:
    """As the service starts a device: the model, the optimisations, the warm-up of every batch
    size, then the start-up objects frozen (gc). `warm=False` (the original's way) stops after
    building the pipeline."""
    start = time.perf_counter()
    model = build()
    sync()
    built = time.perf_counter()
    pipeline = make_pipeline(model, optimizations)
    took = warm_up(pipeline, max_batch, size) if warm else {}
    collection_ms = freeze_start_up_objects() if warm else 0.0
    sync()
    return StartUp(pipeline, built - start, time.perf_counter() - built, took, collection_ms)


def free_memory() -> None:
    """After the last reference to a pipeline is dropped: its frozen start-up objects back to
    the collector, collected, and the device's cached blocks returned, before the next model."""
    release_start_up_objects()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def as_the_original_runs() -> Iterator[None]:
    """TF32 at torch's defaults (matrix products off, cuDNN convolutions on) and inference
    mode: how IDM-VTON's demo runs its pipeline (NOTES.md, "Why the reference mode was
    slower"). The engine's `tf32` switch sets both flags for the process and nothing resets
    them, so they are set here and restored after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def compile_counters() -> dict[str, int]:
    """Dynamo's graphs and Inductor's FX-graph cache hits and misses in this process: a warm
    restart should miss nothing."""
    from torch._dynamo.utils import counters

    return {
        "dynamo_unique_graphs": counters["stats"]["unique_graphs"],
        **{
            f"{name}_{outcome}": counters[group][f"{name}_{outcome}"]
            for group, name in (("inductor", "fxgraph_cache"), ("aot_autograd", "autograd_cache"))
            for outcome in ("hit", "miss", "bypass")
        },
    }


# -- RESULTS.md ---------------------------------------------------------------------------------


def write_section(name: str, body: str) -> None:
    """Replaces the text between `<!-- name:start -->` and `<!-- name:end -->` of RESULTS.md with
    `body` (which ends with a newline), or appends the marked section where there is none."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = f"{start}\n{body}{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)
