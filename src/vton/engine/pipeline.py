"""The IDM-VTON try-on pipeline: a batch of samples in, one image per sample out.

Batch layout with guidance (B samples): rows 0..B-1 unconditional, rows B..2B-1 conditional;
GarmentNet runs on the B garments once per step and TryonNet's unconditional rows see zero
garment tokens. Nothing couples samples, so each result equals the sample's result alone.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from diffusers.utils.torch_utils import randn_tensor

from vton.engine.checkpoint import TryOnModel
from vton.engine.images import clip_pixels, fit_to, to_binary_mask, to_pil, to_signed_tensor
from vton.engine.schedulers import STEP_KWARGS, build_scheduler
from vton.engine.text import PromptEncoder
from vton.engine.types import DiffusionOptions, TextEmbeddings, TryOnOutput, TryOnSample
from vton.errors import InvalidInput

StepCallback = Callable[[int, int], None]


@dataclass
class BatchConditioning:
    """Everything the denoising loop needs, on the device, batch-first; guidance rows doubled."""

    context: torch.Tensor  # text tokens followed by IP image tokens
    text_embeds: torch.Tensor  # pooled text embeddings (added conditioning)
    time_ids: torch.Tensor
    mask: torch.Tensor
    masked_image_latents: torch.Tensor
    pose_latents: torch.Tensor
    cloth_latents: torch.Tensor  # B rows: GarmentNet runs once per garment
    cloth_context: torch.Tensor  # B rows: prompt_embeds_c


class TryOnPipeline:
    """IDM-VTON inference on one device; see idm-vton-model.md for the rules it follows."""

    def __init__(self, model: TryOnModel) -> None:
        self.model = model
        self.prompts = PromptEncoder(model)
        self._uncond_image_state: torch.Tensor | None = None

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

    # -- 2. conditioning ---------------------------------------------------------------------

    def text_embeddings(self, samples: list[TryOnSample]) -> list[TextEmbeddings]:
        todo = [i for i, s in enumerate(samples) if s.text is None]
        encoded = self.prompts.encode_garments([samples[i].description or "" for i in todo])
        found = dict(zip(todo, encoded, strict=True))
        return [s.text if s.text is not None else found[i] for i, s in enumerate(samples)]

    @torch.no_grad()
    def vae_encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Latent distribution MEAN times the scaling factor (in the VAE's own dtype)."""
        vae = self.model.vae
        pixels = pixels.to(self.model.device, self.model.vae_dtype)
        latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
        return latents.to(self.model.dtype)

    @torch.no_grad()
    def image_states(self, garments: torch.Tensor) -> torch.Tensor:
        """Penultimate CLIP hidden states of preprocessed garment pixels (B, tokens, hidden)."""
        encoder = self.model.image_encoder
        out = encoder(garments.to(self.model.device, self.model.dtype), output_hidden_states=True)
        return out.hidden_states[-2]

    def uncond_image_state(self) -> torch.Tensor:
        """The image state of an all-zeros pixel tensor: a constant, computed once per model."""
        if self._uncond_image_state is None:
            size = self.model.image_encoder.config.image_size
            self._uncond_image_state = self.image_states(torch.zeros(1, 3, size, size))
        return self._uncond_image_state

    @torch.no_grad()
    def condition(
        self, samples: list[TryOnSample], options: DiffusionOptions, guidance: bool
    ) -> BatchConditioning:
        model, width, height = self.model, options.width, options.height
        device, dtype = model.device, model.dtype
        texts = self.text_embeddings(samples)

        persons = torch.stack([to_signed_tensor(s.person, width, height) for s in samples])
        masks = torch.stack([to_binary_mask(s.mask, width, height) for s in samples])
        masked_images = persons * (masks < 0.5)
        poses = torch.stack([to_signed_tensor(s.pose, width, height) for s in samples])
        garments = torch.stack([to_signed_tensor(s.garment, width, height) for s in samples])
        _, latent_h, latent_w = self.latent_shape(options)
        mask_latents = torch.nn.functional.interpolate(masks, size=(latent_h, latent_w))

        clip_size = model.image_encoder.config.image_size
        clip_in = torch.stack(
            [clip_pixels(fit_to(s.garment, width, height), clip_size) for s in samples]
        )
        image_states = self.image_states(clip_in)

        prompt = torch.stack([t.prompt_embeds for t in texts])
        pooled = torch.stack([t.pooled_prompt_embeds for t in texts])
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=dtype)
        time_ids = time_ids.repeat(len(samples), 1)
        if guidance:
            prompt = torch.cat([torch.stack([t.negative_prompt_embeds for t in texts]), prompt])
            pooled = torch.cat(
                [torch.stack([t.negative_pooled_prompt_embeds for t in texts]), pooled]
            )
            uncond = self.uncond_image_state().expand_as(image_states)
            image_states = torch.cat([uncond, image_states])
            time_ids = torch.cat([time_ids, time_ids])
        image_tokens = model.resampler(image_states)
        context = torch.cat([prompt.to(device, dtype), image_tokens.to(dtype)], dim=1)

        def doubled(x: torch.Tensor) -> torch.Tensor:
            x = x.to(device, dtype)
            return torch.cat([x, x]) if guidance else x

        return BatchConditioning(
            context=context,
            text_embeds=pooled.to(device, dtype),
            time_ids=time_ids.to(device),
            mask=doubled(mask_latents),
            masked_image_latents=doubled(self.vae_encode(masked_images)),
            pose_latents=doubled(self.vae_encode(poses)),
            cloth_latents=self.vae_encode(garments),
            cloth_context=torch.stack([t.prompt_embeds_c for t in texts]).to(device, dtype),
        )

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
        scheduler.set_timesteps(options.steps, device=model.device)
        step_kwargs = self._step_kwargs(scheduler, options.scheduler, generators)
        latents = latents * scheduler.init_noise_sigma
        timesteps = scheduler.timesteps
        model.bank.guidance = guidance
        for i, t in enumerate(timesteps):
            model.bank.clear()
            model.garment_net(cond.cloth_latents, t, encoder_hidden_states=cond.cloth_context)
            latent_in = torch.cat([latents, latents]) if guidance else latents
            latent_in = scheduler.scale_model_input(latent_in, t)
            latent_in = torch.cat(
                [latent_in, cond.mask, cond.masked_image_latents, cond.pose_latents], dim=1
            )
            noise = model.tryon_net(
                latent_in,
                t,
                encoder_hidden_states=cond.context,
                added_cond_kwargs={"text_embeds": cond.text_embeds, "time_ids": cond.time_ids},
            ).sample
            if guidance:
                uncond, text = noise.chunk(2)
                noise = uncond + options.guidance_scale * (text - uncond)
            latents = scheduler.step(noise, t, latents, **step_kwargs).prev_sample
            if on_step is not None:
                on_step(i + 1, len(timesteps))
        model.bank.clear()
        return latents

    @staticmethod
    def _step_kwargs(scheduler, name: str, generators: list[torch.Generator]) -> dict:
        kwargs = dict(STEP_KWARGS.get(name, {}))
        if "generator" in inspect.signature(scheduler.step).parameters:
            kwargs["generator"] = generators
        return kwargs

    # -- 5. decoding -------------------------------------------------------------------------

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.model.vae
        latents = latents.to(self.model.vae_dtype) / vae.config.scaling_factor
        return vae.decode(latents).sample.clamp(-1, 1).float().cpu()

    # -- the entry point ---------------------------------------------------------------------

    def __call__(
        self,
        samples: list[TryOnSample],
        options: DiffusionOptions | None = None,
        on_step: StepCallback | None = None,
    ) -> list[TryOnOutput]:
        options = options or DiffusionOptions()
        # 1. Check the inputs
        self.check_inputs(samples, options)
        guidance = options.guidance_scale > 1.0
        timings: dict[str, float] = {}
        # 2. Encode text, person, pose, garment (VAE latents, IP image tokens)
        with self._timed(timings, "encode"):
            cond = self.condition(samples, options, guidance)
        # 3. Initial noise, one generator per sample
        latents, generators = self.initial_noise(samples, options)
        # 4. Denoising loop
        with self._timed(timings, "diffusion"):
            latents = self.denoise(latents, cond, options, generators, guidance, on_step)
        # 5. Decode
        with self._timed(timings, "decode"):
            images = self.decode(latents)
        return [TryOnOutput(image=img, pil=to_pil(img), timings_ms=dict(timings)) for img in images]

    @contextmanager
    def _timed(self, timings: dict[str, float], phase: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        if self.model.device.type == "cuda":
            torch.cuda.synchronize(self.model.device)
        timings[phase] = (time.perf_counter() - start) * 1000.0
