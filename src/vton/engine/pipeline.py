"""The IDM-VTON try-on pipeline: a batch of samples in, one image per sample out.

Batch layout with guidance (B samples): rows 0..B-1 unconditional, rows B..2B-1 conditional;
GarmentNet's features come from one row per sample (garment_features.py) and TryonNet's
unconditional rows see zero garment tokens. Nothing couples samples, so each result equals the
sample's result alone.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from vton.engine.checkpoint import TryOnModel
from vton.engine.conditioning import BatchConditioning, ConditioningEncoder, in_chunks
from vton.engine.ddpm import SyncFreeDdpm
from vton.engine.devices import free_device_memory
from vton.engine.garment_features import GarmentFeaturePlanner
from vton.engine.images import to_pil, to_uint8
from vton.engine.noise_schedulers import STEP_KWARGS, build_scheduler
from vton.engine.optimize import EngineOptimizations, apply_optimizations
from vton.engine.progress import StepCallback, StepProgress
from vton.engine.step import GarmentFeatures, StepGraphs, StepKey, run_networks
from vton.engine.types import DiffusionOptions, TryOnOutput, TryOnSample
from vton.errors import InvalidInput

log = logging.getLogger(__name__)


class TryOnPipeline:
    """IDM-VTON inference on one device; see idm-vton-model.md for the rules it follows."""

    def __init__(self, model: TryOnModel, optimizations: EngineOptimizations | None = None) -> None:
        self.model = model
        self.optimizations = optimizations or EngineOptimizations()
        self.optimization_status = apply_optimizations(model, self.optimizations)
        self.conditioning = ConditioningEncoder(model, self.optimizations.conditioning_cache_bytes)
        self.garment_features = GarmentFeaturePlanner(model, self.optimizations)
        use_graphs = self.optimizations.cuda_graphs and model.device.type == "cuda"
        self.graphs = StepGraphs(model) if use_graphs else None

    # -- 1. inputs --------------------------------------------------------------------------

    def check_inputs(self, samples: list[TryOnSample], options: DiffusionOptions) -> None:
        if not samples:
            raise InvalidInput("samples: at least one sample is needed")
        if options.steps < 1:
            raise InvalidInput(f"steps must be >= 1, got {options.steps}")
        multiple = self.size_multiple()
        for name, value in (("height", options.height), ("width", options.width)):
            if value < multiple or value % multiple:
                raise InvalidInput(f"{name} must be a positive multiple of {multiple}, got {value}")
        latent_shape = self.latent_shape(options)
        for i, sample in enumerate(samples):
            if sample.text is None and sample.description is None:
                raise InvalidInput(f"sample {i}: give text embeddings or a description")
            got = None if sample.latents is None else tuple(sample.latents.shape)
            if got is not None and got not in (latent_shape, (1, *latent_shape)):
                raise InvalidInput(f"sample {i}: latents must be {(1, *latent_shape)}, got {got}")

    def size_multiple(self) -> int:
        """Image sizes must divide by the VAE factor times TryonNet's down-sampling."""
        downsamples = len(self.model.tryon_net.config.block_out_channels) - 1
        return self.model.vae_scale_factor * 2**downsamples

    def latent_shape(self, options: DiffusionOptions) -> tuple[int, int, int]:
        factor = self.model.vae_scale_factor
        channels = self.model.vae.config.latent_channels
        return (channels, options.height // factor, options.width // factor)

    # -- 3. noise ----------------------------------------------------------------------------

    def initial_noise(
        self, samples: list[TryOnSample], options: DiffusionOptions
    ) -> tuple[torch.Tensor, list[torch.Generator]]:
        """Each sample's noise from its own CPU generator: independent of device and batch."""
        shape = (1, *self.latent_shape(options))
        generators = [torch.Generator("cpu").manual_seed(s.seed) for s in samples]
        noise = [
            s.latents.reshape(shape).to(self.model.device, self.model.dtype)
            if s.latents is not None
            else randn_tensor(shape, generator=g, device=self.model.device, dtype=self.model.dtype)
            for s, g in zip(samples, generators, strict=True)
        ]
        return torch.cat(noise), generators

    # -- 4. denoising ------------------------------------------------------------------------

    @torch.no_grad()
    def denoise(
        self,
        latents: torch.Tensor,
        cond: BatchConditioning,
        options: DiffusionOptions,
        generators: list[torch.Generator],
        guidance: bool,
        on_step: StepCallback | None,
    ) -> torch.Tensor:
        model = self.model
        scheduler = build_scheduler(options.scheduler, model.scheduler_config)
        sync_free = self.optimizations.sync_free_steps and SyncFreeDdpm.supports(scheduler)
        scheduler.set_timesteps(options.steps, device="cpu" if sync_free else model.device)
        step = self._stepper(scheduler, options.scheduler, generators, sync_free)
        latents = latents * scheduler.init_noise_sigma
        timesteps = scheduler.timesteps
        device_timesteps = timesteps.to(model.device)
        progress = StepProgress(on_step, len(timesteps), model.device)
        schedule = (options.scheduler, options.steps, options.height, options.width)
        features, step_key = self.garment_features.plan(cond, guidance, device_timesteps, schedule)
        for i, (t, device_t) in enumerate(zip(timesteps, device_timesteps, strict=True)):
            latent_in = torch.cat([latents, latents]) if guidance else latents
            latent_in = scheduler.scale_model_input(latent_in, t)
            latent_in = torch.cat(
                [latent_in, cond.mask, cond.masked_image_latents, cond.pose_latents], dim=1
            )
            noise = self.networks(step_key, latent_in, device_t, cond, guidance, features(i))
            if guidance:
                uncond, text = noise.chunk(2)
                noise = uncond + options.guidance_scale * (text - uncond)
            latents = step(noise, t, latents)
            progress.queued()
        progress.finish()
        return latents

    def networks(
        self,
        key: StepKey,
        latent_in: torch.Tensor,
        t: torch.Tensor,
        cond: BatchConditioning,
        guidance: bool,
        garment_features: GarmentFeatures | None = None,
    ) -> torch.Tensor:
        if self.graphs is not None:
            return self.graphs(key, latent_in, t, cond, guidance, garment_features)
        return run_networks(self.model, latent_in, t, cond, guidance, garment_features)

    @staticmethod
    def _stepper(
        scheduler, name: str, generators: list[torch.Generator], sync_free: bool
    ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
        """(noise prediction, timestep, latents) -> the previous latents."""
        if sync_free:
            return SyncFreeDdpm(scheduler, generators).step
        kwargs = dict(STEP_KWARGS.get(name, {}))
        if "generator" in inspect.signature(scheduler.step).parameters:
            kwargs["generator"] = generators
        return lambda noise, t, latents: scheduler.step(noise, t, latents, **kwargs).prev_sample

    def _diffuse(
        self,
        samples: list[TryOnSample],
        cond: BatchConditioning,
        options: DiffusionOptions,
        guidance: bool,
        on_step: StepCallback | None,
    ) -> torch.Tensor:
        """Noise, then the loop; once more from fresh noise after dropping the garment feature
        cache if the device ran out of memory while it held something (the cache must never fail
        a request that would succeed without it)."""
        try:
            latents, generators = self.initial_noise(samples, options)
            return self.denoise(latents, cond, options, generators, guidance, on_step)
        except torch.cuda.OutOfMemoryError:
            cache = self.garment_features.cache
            if not cache:
                raise
            log.warning(
                "out of device memory with %d garment feature timelines cached: dropping them "
                "and running the batch again",
                len(cache),
            )
            cache.clear()
            free_device_memory()
        latents, generators = self.initial_noise(samples, options)
        return self.denoise(latents, cond, options, generators, guidance, on_step)

    # -- 5. decoding -------------------------------------------------------------------------

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [-1, 1] (float32) and as 8-bit (converted on the device), both on the CPU.

        One image per VAE call: the decoder's compiled resnets then only ever see one shape, so
        no start traces their symbolic-batch graphs, and the fp32 activations (~2 GiB per image
        at 1024x768) stay those of one image at any batch size."""
        vae = self.model.vae
        latents = latents.to(self.model.vae_dtype) / vae.config.scaling_factor
        images = in_chunks(latents, lambda one: vae.decode(one).sample, size=1)
        images = images.clamp(-1, 1).float()
        return images.cpu(), to_uint8(images).cpu()

    # -- the entry point ---------------------------------------------------------------------

    def __call__(
        self,
        samples: list[TryOnSample],
        options: DiffusionOptions | None = None,
        on_step: StepCallback | None = None,
    ) -> list[TryOnOutput]:
        options = options or DiffusionOptions()
        timings: dict[str, float] = {}
        latents = self.final_latents(samples, options, on_step, timings)
        # 5. Decode
        with self._timed(timings, "decode"):
            images, pixels = self.decode(latents)
        return [
            TryOnOutput(image=image, pil=to_pil(image_pixels), timings_ms=dict(timings))
            for image, image_pixels in zip(images, pixels, strict=True)
        ]

    def final_latents(
        self,
        samples: list[TryOnSample],
        options: DiffusionOptions,
        on_step: StepCallback | None = None,
        timings: dict[str, float] | None = None,
    ) -> torch.Tensor:
        """Steps 1-4 of a try-on: the denoised latents of the batch, not yet decoded."""
        timings = {} if timings is None else timings
        # 1. Check the inputs
        self.check_inputs(samples, options)
        guidance = options.guidance_scale > 1.0
        # 2. Encode text, person, pose, garment (VAE latents, IP image tokens)
        with self._timed(timings, "encode"):
            cond = self.conditioning.assemble(samples, options, guidance)
        # 3-4. Initial noise (one generator per sample) and the denoising loop
        with self._timed(timings, "diffusion"):
            return self._diffuse(samples, cond, options, guidance, on_step)

    def warm_up(self, batch_sizes: Iterable[int], options: DiffusionOptions) -> dict[int, float]:
        """One single-step try-on per step a request can reach: each batch size, guidance on and
        off, each garment layout (`GarmentFeaturePlanner.warm_up_layouts`), one try-on per
        distinct `StepKey`. On CUDA that captures (and compiles) every step graph now rather than
        on a user's request; then the step graphs are frozen: a key missed here runs eagerly and
        is counted, never captured inside a request. Returns milliseconds per batch size.

        The person is keyed, so with the conditioning cache on it is encoded once. Only the first
        try-on is decoded: the VAE decodes one image per call at any batch size, so one decode
        warms it (the rest would add ~65 ms per image on an H100)."""
        one_step = replace(options, steps=1)
        latent_size = self.latent_shape(options)[1:]
        size = (options.width, options.height)
        gray, white = Image.new("RGB", size, (128, 128, 128)), Image.new("L", size, 255)
        planner = self.garment_features
        warmed: set[StepKey] = set()
        took: dict[int, float] = {}
        decoded = False
        for batch in batch_sizes:
            start = time.perf_counter()
            for guidance in (True, False):
                for garment_keys in planner.warm_up_layouts(batch):
                    key = planner.step_key(garment_keys, guidance, latent_size)
                    if key in warmed:
                        continue
                    warmed.add(key)
                    samples = [
                        TryOnSample(
                            gray,
                            white,
                            gray,
                            gray,
                            description="a shirt",
                            person_key="vton-warm-up",
                            garment_key=garment_key,
                        )
                        for garment_key in garment_keys
                    ]
                    run = replace(one_step, guidance_scale=2.0 if guidance else 1.0)
                    if decoded:
                        self.final_latents(samples, run)
                    else:
                        self(samples, run)
                        decoded = True
            took[batch] = (time.perf_counter() - start) * 1000.0
        if planner.cache is not None:
            planner.cache.reset()  # the warm-up's placeholder garments
        if self.graphs is not None:
            self.graphs.freeze()
        return took

    @contextmanager
    def _timed(self, timings: dict[str, float], phase: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        if self.model.device.type == "cuda":
            torch.cuda.synchronize(self.model.device)
        timings[phase] = (time.perf_counter() - start) * 1000.0
