"""The model's derived conditioning of a person and of a garment, cached on the device.

A person's conditioning (mask latent, masked-image latents, pose latents) and a garment's (cloth
latents, CLIP image state, text embeddings) do not depend on the rest of the batch. When a
sample names them (`person_key`, `garment_key`: an id with a version), they are computed once
and kept on the device in a byte-bounded LRU; otherwise they are computed per call.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, fields
from typing import TypeVar

import torch

from vton.cache.lru import Lru
from vton.engine.checkpoint import TryOnModel
from vton.engine.images import clip_pixels, fit_to, to_binary_mask, to_signed_tensor
from vton.engine.text import PromptEncoder
from vton.engine.types import DiffusionOptions, TextEmbeddings, TryOnSample

T = TypeVar("T")
VAE_CHUNK = 4  # images per VAE call: the fp32 VAE at 1024x768 needs ~2 GiB of activations each


def in_chunks(
    batch: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], size: int = VAE_CHUNK
) -> torch.Tensor:
    """fn over slices of the batch axis, concatenated: bounded memory, same per-row result."""
    return torch.cat([fn(batch[i : i + size]) for i in range(0, batch.shape[0], size)])


def tensor_bytes(obj: object) -> int:
    """Bytes held by the tensors among a dataclass's fields (nested dataclasses and dicts of
    tensors included)."""
    total = 0
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        values = value.values() if isinstance(value, dict) else [value]
        for item in values:
            if isinstance(item, torch.Tensor):
                total += item.numel() * item.element_size()
            elif hasattr(item, "__dataclass_fields__"):
                total += tensor_bytes(item)
    return total


def clip_image_size(model: TryOnModel) -> int:
    """The side of the square pixels CLIP's image encoder takes."""
    size = model.image_encoder.config.image_size
    if not isinstance(size, int):
        raise TypeError(f"the image encoder's image_size must be an int, got {size!r}")
    return size


@dataclass
class PersonConditioning:
    mask: torch.Tensor  # (1, h, w) binary, latent size
    masked_image_latents: torch.Tensor  # (4, h, w)
    pose_latents: torch.Tensor  # (4, h, w)


@dataclass
class GarmentConditioning:
    cloth_latents: torch.Tensor  # (4, h, w)
    image_tokens: torch.Tensor  # (ip tokens, cross dim): the Resampler on CLIP's penultimate state
    text: TextEmbeddings


@dataclass
class BatchConditioning:
    """Everything the denoising loop needs, on the device, batch-first; guidance rows doubled."""

    context: torch.Tensor  # text tokens followed by IP image tokens
    text_embeds: torch.Tensor  # pooled text embeddings (added conditioning)
    time_ids: torch.Tensor
    mask: torch.Tensor
    masked_image_latents: torch.Tensor
    pose_latents: torch.Tensor
    cloth_latents: torch.Tensor  # one row per sample (GarmentNet's input)
    cloth_context: torch.Tensor  # prompt_embeds_c of the samples' garments
    garment_keys: tuple[
        Hashable | None, ...
    ] = ()  # each sample's garment_key (None: it named none)


class ConditioningEncoder:
    """Computes (or finds in its cache) each sample's person and garment conditioning."""

    def __init__(self, model: TryOnModel, cache_bytes: int) -> None:
        self.model = model
        self.prompts = PromptEncoder(model)
        self.cache: Lru[Hashable, object] = Lru(cache_bytes, size=tensor_bytes)
        self._uncond_image_tokens: torch.Tensor | None = None

    # -- the model's encoders ----------------------------------------------------------------

    @torch.no_grad()
    def vae_encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Latent distribution MEAN times the scaling factor (computed in the VAE's dtype)."""
        vae = self.model.vae
        pixels = pixels.to(self.model.device, self.model.vae_dtype)
        latents = in_chunks(pixels, lambda chunk: vae.encode(chunk).latent_dist.mean)
        return (latents * vae.config.scaling_factor).to(self.model.dtype)

    @torch.no_grad()
    def image_states(self, pixels: torch.Tensor) -> torch.Tensor:
        """Penultimate CLIP hidden states of preprocessed pixels: (B, tokens, hidden)."""
        pixels = pixels.to(self.model.device, self.model.dtype)
        return self.model.image_encoder(pixels, output_hidden_states=True).hidden_states[-2]

    @torch.no_grad()
    def image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """IP-Adapter tokens of preprocessed pixels: the Resampler on the penultimate CLIP state
        (row by row independent, so they are computed once per garment and cached with it)."""
        return self.model.resampler(self.image_states(pixels)).to(self.model.dtype)

    def uncond_image_tokens(self) -> torch.Tensor:
        """The IP tokens of an all-zeros pixel tensor: a constant, computed once per model."""
        if self._uncond_image_tokens is None:
            size = clip_image_size(self.model)
            self._uncond_image_tokens = self.image_tokens(torch.zeros(1, 3, size, size))[0]
        return self._uncond_image_tokens

    # -- per person, per garment -------------------------------------------------------------

    def _cached(
        self,
        kind: str,
        samples: Sequence[TryOnSample],
        key_of: Callable[[TryOnSample], Hashable | None],
        size: tuple[int, int],
        compute: Callable[[list[TryOnSample]], list[T]],
    ) -> list[T]:
        """Looks each sample up by key; computes the misses in one batch; caches keyed ones."""
        keys = [(kind, k, *size) if (k := key_of(s)) is not None else None for s in samples]
        found: dict[int, T] = {}
        for i, key in enumerate(keys):
            if key is not None and (hit := self.cache.get(key)) is not None:
                found[i] = hit  # type: ignore[assignment]
        todo = [i for i in range(len(samples)) if i not in found]
        for i, value in zip(todo, compute([samples[i] for i in todo]) if todo else [], strict=True):
            found[i] = value
            if keys[i] is not None:
                self.cache.put(keys[i], value)
        return [found[i] for i in range(len(samples))]

    def persons(
        self, samples: Sequence[TryOnSample], options: DiffusionOptions
    ) -> list[PersonConditioning]:
        width, height = options.width, options.height

        @torch.no_grad()
        def compute(batch: list[TryOnSample]) -> list[PersonConditioning]:
            persons = torch.stack([to_signed_tensor(s.person, width, height) for s in batch])
            masks = torch.stack([to_binary_mask(s.mask, width, height) for s in batch])
            poses = torch.stack([to_signed_tensor(s.pose, width, height) for s in batch])
            masked = self.vae_encode(persons * (masks < 0.5))
            pose = self.vae_encode(poses)
            small = torch.nn.functional.interpolate(masks, size=masked.shape[-2:])
            small = small.to(self.model.device, self.model.dtype)
            return [PersonConditioning(small[i], masked[i], pose[i]) for i in range(len(batch))]

        return self._cached("person", samples, lambda s: s.person_key, (width, height), compute)

    def garments(
        self, samples: Sequence[TryOnSample], options: DiffusionOptions
    ) -> list[GarmentConditioning]:
        width, height = options.width, options.height
        clip_size = clip_image_size(self.model)

        @torch.no_grad()
        def compute(batch: list[TryOnSample]) -> list[GarmentConditioning]:
            garments = [fit_to(s.garment.convert("RGB"), width, height) for s in batch]
            cloth = self.vae_encode(
                torch.stack([to_signed_tensor(g, width, height) for g in garments])
            )
            tokens = self.image_tokens(torch.stack([clip_pixels(g, clip_size) for g in garments]))
            texts = self.texts(batch)
            return [GarmentConditioning(cloth[i], tokens[i], texts[i]) for i in range(len(batch))]

        return self._cached("garment", samples, lambda s: s.garment_key, (width, height), compute)

    def texts(self, samples: Sequence[TryOnSample]) -> list[TextEmbeddings]:
        todo = [i for i, s in enumerate(samples) if s.text is None]
        encoded = self.prompts.encode_garments([samples[i].description or "" for i in todo])
        by_index = dict(zip(todo, encoded, strict=True))
        device, dtype = self.model.device, self.model.dtype
        return [
            TextEmbeddings(
                **{k: v.to(device, dtype) for k, v in (s.text or by_index[i]).as_dict().items()}
            )
            for i, s in enumerate(samples)
        ]

    # -- the batch ---------------------------------------------------------------------------

    @torch.no_grad()
    def assemble(
        self,
        samples: Sequence[TryOnSample],
        options: DiffusionOptions,
        guidance: bool,
    ) -> BatchConditioning:
        model = self.model
        device, dtype = model.device, model.dtype
        persons = self.persons(samples, options)
        garments = self.garments(samples, options)

        prompt = torch.stack([g.text.prompt_embeds for g in garments])
        pooled = torch.stack([g.text.pooled_prompt_embeds for g in garments])
        image_tokens = torch.stack([g.image_tokens for g in garments])
        h, w = options.height, options.width
        time_ids = torch.tensor([[h, w, 0, 0, h, w]], dtype=dtype, device=device)
        time_ids = time_ids.repeat(len(samples), 1)
        if guidance:
            prompt = torch.cat(
                [torch.stack([g.text.negative_prompt_embeds for g in garments]), prompt]
            )
            pooled = torch.cat(
                [torch.stack([g.text.negative_pooled_prompt_embeds for g in garments]), pooled]
            )
            image_tokens = torch.cat(
                [self.uncond_image_tokens().expand_as(image_tokens), image_tokens]
            )
            time_ids = torch.cat([time_ids, time_ids])

        def rows(values: list[torch.Tensor]) -> torch.Tensor:
            x = torch.stack(values)
            return torch.cat([x, x]) if guidance else x

        return BatchConditioning(
            context=torch.cat([prompt, image_tokens], dim=1),
            text_embeds=pooled,
            time_ids=time_ids,
            mask=rows([p.mask for p in persons]),
            masked_image_latents=rows([p.masked_image_latents for p in persons]),
            pose_latents=rows([p.pose_latents for p in persons]),
            cloth_latents=torch.stack([g.cloth_latents for g in garments]),
            cloth_context=torch.stack([g.text.prompt_embeds_c for g in garments]),
            garment_keys=tuple(s.garment_key for s in samples),
        )
