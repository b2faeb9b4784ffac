"""The named types that pass between the engine and its callers."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, fields
from typing import Literal

import torch
from PIL import Image

SchedulerName = Literal["ddpm", "ddim", "euler", "dpmpp", "unipc"]

NEGATIVE_PROMPT = "monochrome, lowres, bad anatomy, worst quality, low quality"


def tryon_prompt(description: str) -> str:
    """The TryonNet prompt for a garment description (the reference's wording)."""
    return "model is wearing " + description


def garment_prompt(description: str) -> str:
    """The GarmentNet prompt for a garment description (the reference's wording)."""
    return "a photo of " + description


@dataclass(frozen=True)
class TextEmbeddings:
    """The five text tensors of one garment description, without a batch axis.

    prompt_embeds / negative_prompt_embeds / prompt_embeds_c: (77, 2048) for the real model;
    pooled_prompt_embeds / negative_pooled_prompt_embeds: (1280,).
    """

    prompt_embeds: torch.Tensor
    negative_prompt_embeds: torch.Tensor
    pooled_prompt_embeds: torch.Tensor
    negative_pooled_prompt_embeds: torch.Tensor
    prompt_embeds_c: torch.Tensor

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self.names()}

    @classmethod
    def from_dict(cls, tensors: dict[str, torch.Tensor]) -> TextEmbeddings:
        """Builds from a dict holding exactly the five names; raises ValueError otherwise."""
        missing = sorted(set(cls.names()) - set(tensors))
        extra = sorted(set(tensors) - set(cls.names()))
        if missing or extra:
            raise ValueError(f"text embeddings: missing {missing}, unexpected {extra}")
        for name in ("prompt_embeds", "negative_prompt_embeds", "prompt_embeds_c"):
            if tensors[name].ndim != 2:
                raise ValueError(
                    f"text embeddings: {name} must be 2-D, got {tuple(tensors[name].shape)}"
                )
        for name in ("pooled_prompt_embeds", "negative_pooled_prompt_embeds"):
            if tensors[name].ndim != 1:
                raise ValueError(
                    f"text embeddings: {name} must be 1-D, got {tuple(tensors[name].shape)}"
                )
        return cls(**{name: tensors[name] for name in cls.names()})

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.as_dict().values())


@dataclass
class TryOnSample:
    """One try-on: a person (image, mask, DensePose image) and a garment (image, text).

    Images are PIL images of any size; they are resized to the working size. Give either `text`
    (precomputed embeddings) or `description`. `latents` (4 x H/8 x W/8 or 1 x 4 x H/8 x W/8)
    replaces the seeded initial noise. `person_key` / `garment_key` name the person's and the
    garment's artifacts with their version: the engine then caches their derived conditioning on
    the device (and, with the garment feature cache on, the garment's GarmentNet features).
    """

    person: Image.Image
    mask: Image.Image
    pose: Image.Image
    garment: Image.Image
    description: str | None = None
    text: TextEmbeddings | None = None
    seed: int = 42
    latents: torch.Tensor | None = None
    person_key: Hashable | None = None
    garment_key: Hashable | None = None


@dataclass(frozen=True)
class DiffusionOptions:
    """What must agree for samples to share one batch."""

    steps: int = 30
    scheduler: SchedulerName = "ddpm"
    guidance_scale: float = 2.0
    height: int = 1024
    width: int = 768


@dataclass
class TryOnOutput:
    """One sample's result: the decoded image in [-1, 1] (3 x H x W, float32, CPU) and as 8-bit."""

    image: torch.Tensor
    pil: Image.Image
    timings_ms: dict[str, float] = field(default_factory=dict)
