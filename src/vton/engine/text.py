"""Text conditioning by the SDXL rule: both CLIP text encoders, penultimate hidden states."""

from __future__ import annotations

import torch

from vton.engine.checkpoint import TryOnModel
from vton.engine.types import NEGATIVE_PROMPT, TextEmbeddings, garment_prompt, tryon_prompt


class PromptEncoder:
    """Encodes garment descriptions into the five text tensors IDM-VTON needs.

    The negative prompt never changes, so its embeddings are computed once per model.
    """

    def __init__(self, model: TryOnModel) -> None:
        self.model = model
        self._negative: tuple[torch.Tensor, torch.Tensor] | None = None

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 77, hidden_1 + hidden_2) penultimate states and (N, projection) pooled embeddings."""
        model = self.model
        hidden: list[torch.Tensor] = []
        pairs = ((model.tokenizer, model.text_encoder), (model.tokenizer_2, model.text_encoder_2))
        for tokenizer, encoder in pairs:
            ids = tokenizer(
                prompts,
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(model.device)
            out = encoder(ids, output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
        pooled = out.text_embeds  # text_encoder_2's projected pooled output
        return torch.cat(hidden, dim=-1), pooled

    def negative(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._negative is None:
            embeds, pooled = self.encode_prompts([NEGATIVE_PROMPT])
            self._negative = (embeds[0], pooled[0])
        return self._negative

    def encode_garments(self, descriptions: list[str]) -> list[TextEmbeddings]:
        """The five tensors per description, on the model's device, without a batch axis."""
        if not descriptions:
            return []
        positive, pooled = self.encode_prompts([tryon_prompt(d) for d in descriptions])
        garment, _ = self.encode_prompts([garment_prompt(d) for d in descriptions])
        negative, negative_pooled = self.negative()
        return [
            TextEmbeddings(
                prompt_embeds=positive[i],
                negative_prompt_embeds=negative,
                pooled_prompt_embeds=pooled[i],
                negative_pooled_prompt_embeds=negative_pooled,
                prompt_embeds_c=garment[i],
            )
            for i in range(len(descriptions))
        ]

    def encode_garment(self, description: str) -> TextEmbeddings:
        return self.encode_garments([description])[0]
