"""The engine side of the service: devices, precisions, one model (and a fallback) per device,
the start-up report, and the warm-up try-on."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace

import torch

from vton.config import Settings
from vton.engine.checkpoint import load_model
from vton.engine.devices import parse_device, parse_dtype, quiet_model_libraries
from vton.engine.optimize import OUTPUT_CHANGING, EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.types import DiffusionOptions
from vton.scheduler import DevicePipelines

log = logging.getLogger(__name__)


def resolve_devices(spec: str) -> tuple[str, ...]:
    """VTON_DEVICES as a tuple; empty means every CUDA device, else the CPU."""
    if spec:
        devices = tuple(spec.split(","))
        for device in devices:
            parse_device(device)
        return devices
    if torch.cuda.is_available():
        return tuple(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    return ("cpu",)


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """VTON_DTYPE for a device; auto is float16 on CUDA and float32 on the CPU."""
    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return parse_dtype(name)


def resolve_fallback(name: str, dtype: torch.dtype) -> torch.dtype | None:
    """VTON_FALLBACK_DTYPE; auto is bfloat16 behind a float16 model (same range as float32),
    none behind anything else."""
    if name == "auto":
        return torch.bfloat16 if dtype == torch.float16 else None
    return None if name == "none" else parse_dtype(name)


def engine_optimizations(settings: Settings) -> EngineOptimizations:
    """The main pipeline's optimisations from the settings."""
    return EngineOptimizations(
        compile=settings.compile,
        garment_features_once=settings.garment_features_once,
        garment_net_ahead=settings.garment_net_ahead,
        conditioning_cache_bytes=settings.conditioning_cache_bytes,
        garment_feature_cache_bytes=int(settings.garment_feature_cache_gb * 2**30),
    )


def fallback_optimizations(main: EngineOptimizations) -> EngineOptimizations:
    """The fallback pipeline's: the main one's, so it computes the same images (the output
    changing modes above all), except three that keep the output. The rare retry runs eagerly:
    compiling a second copy would double the start-up, and its step graphs would be captured
    inside the retried request (it is never warmed up). No garment feature cache: a second budget
    on the same device, for garments that rarely come back to the fallback."""
    return replace(main, compile=False, cuda_graphs=False, garment_feature_cache_bytes=0)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class DeviceEngine:
    """One device's pipelines and what they run in."""

    device: str
    pipeline: TryOnPipeline
    """The main pipeline, unwrapped: warm-up, and its model's text encoders for registration."""
    dtype: torch.dtype
    fallback_dtype: torch.dtype | None
    pipelines: DevicePipelines


def load_engine(settings: Settings, device: str) -> DeviceEngine:
    """Loads the model on `device` (and its fallback copy) and logs what runs and why."""
    quiet_model_libraries()
    dtype = resolve_dtype(settings.dtype, device)
    fallback_dtype = resolve_fallback(settings.fallback_dtype, dtype)
    if settings.compile:
        # Inductor reads its cache folder from the environment; a kept folder makes restarts fast.
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(settings.compile_cache_dir.resolve()))
    optimizations = engine_optimizations(settings)
    main = TryOnPipeline(load_model(settings.model_path, dtype=dtype, device=device), optimizations)
    fallback = None
    if fallback_dtype is not None:
        fallback_model = load_model(settings.model_path, dtype=fallback_dtype, device=device)
        fallback = TryOnPipeline(fallback_model, fallback_optimizations(optimizations))
    status = main.optimization_status  # each one is logged with its reason by the engine
    log.info(
        "engine device=%s model=%s dtype=%s vae_dtype=%s fallback_dtype=%s "
        "optimisations_on=%s optimisations_off=%s",
        device,
        settings.model_path,
        _name(dtype),
        _name(main.model.vae_dtype),
        _name(fallback_dtype) if fallback_dtype else "none",
        ",".join(s.name for s in status if s.enabled) or "none",
        ",".join(s.name for s in status if not s.enabled) or "none",
    )
    return DeviceEngine(device, main, dtype, fallback_dtype, DevicePipelines(main, fallback))


def model_identity(settings: Settings, engines: list[DeviceEngine]) -> str:
    """What the (persistent) result cache keys on for the model: the checkpoint folder, the
    precision and the output-changing modes that are on, so no mode serves another's images."""
    dtypes = sorted({_name(engine.dtype) for engine in engines})
    modes = sorted(
        {
            status.name
            for engine in engines
            for status in engine.pipeline.optimization_status
            if status.enabled and status.name in OUTPUT_CHANGING
        }
    )
    identity = f"{settings.model_path.resolve()}:{','.join(dtypes)}"
    return f"{identity}:{'+'.join(modes)}" if modes else identity


_WARM_UP_LOCK = threading.Lock()
"""One device warms up at a time: torch.compile (Dynamo, Inductor) is not thread-safe, and the
warm-up is where the blocks compile."""


def prepare_worker_thread(engine: DeviceEngine, settings: Settings) -> None:
    """Runs first on the device's worker thread, the one that serves all its batches: makes the
    engine's device the thread's current CUDA device (for whatever uses the current device rather
    than the tensors' own) and warms up there. PyTorch keeps cuDNN's plans and cuBLAS handles per
    thread (bench/NOTES.md: "warm-up on each device's worker thread")."""
    if engine.device.startswith("cuda"):
        torch.cuda.set_device(engine.device)
    if settings.warmup:
        with _WARM_UP_LOCK:
            warm_up(engine, settings)


def warm_up(engine: DeviceEngine, settings: Settings) -> None:
    """Single-step try-ons at the working size for the batch sizes the scheduler may form: on
    CUDA every size up to VTON_MAX_BATCH, each with every step a request can reach (all its step
    graphs are captured now; a request never captures one), on the CPU batch 1 (first-call
    allocations and kernel choices)."""
    sizes = range(1, settings.max_batch + 1) if engine.device.startswith("cuda") else (1,)
    options = DiffusionOptions(height=settings.height, width=settings.width)
    took = engine.pipeline.warm_up(sizes, options)
    log.info(
        "warm-up device=%s %dx%d %s",
        engine.device,
        settings.width,
        settings.height,
        " ".join(f"batch{size}_ms={ms:.0f}" for size, ms in took.items()),
    )
