"""GarmentNet for several coming timesteps in one batch (`garment_net_ahead`).

GarmentNet's input at step t is the clean cloth latents, its text context and t; nothing of the
denoising trajectory. So the features of k timesteps can be computed in one pass over k x G rows
(G distinct garments) before those k steps run: the same function row by row, so the same
features up to fp16 rounding, but at batch 1 the pass runs k times larger matmuls, which use the
GPU far better than k passes over one row. TryonNet's step then runs alone on the given features
(its CUDA graph is the TryonNet-only one that `garment_features_once` also uses).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from vton.engine.checkpoint import TryOnModel
from vton.engine.conditioning import BatchConditioning
from vton.engine.step import GarmentFeatures, run_garment_net


def steps_per_pass(garments: int, rows: int) -> int:
    """How many timesteps one GarmentNet pass covers for `garments` distinct garments when a pass
    should have about `rows` rows: 1 (no look-ahead) once the garments alone fill a pass."""
    return max(1, rows // max(1, garments))


class GarmentFeaturesAhead:
    """Step i's garment features, computed `steps` timesteps at a time and sliced per step.

    `timesteps` are the schedule's, on the model's device; only one pass's features are held
    at a time (steps x G rows of every transformer block's features: 157 MB per row at
    1024x768 with the full-size model).
    """

    def __init__(
        self, model: TryOnModel, cond: BatchConditioning, timesteps: torch.Tensor, steps: int
    ) -> None:
        if steps < 1:
            raise ValueError(f"steps per GarmentNet pass must be >= 1, got {steps}")
        self.model = model
        self.cond = cond
        self.timesteps = timesteps
        self.steps = steps
        self.garments = cond.cloth_latents.shape[0]
        self._first: int | None = None  # the first step of the pass held in `_features`
        self._features: GarmentFeatures = {}

    def __call__(self, step: int) -> GarmentFeatures:
        if not 0 <= step < len(self.timesteps):
            raise IndexError(f"step {step} of a {len(self.timesteps)}-step schedule")
        if self._first is None or not self._first <= step < self._first + self.steps:
            self._run_pass(step)
            self._first = step
        offset = (step - self._first) * self.garments
        return {name: f[offset : offset + self.garments] for name, f in self._features.items()}

    def _run_pass(self, first: int) -> None:
        # let the previous pass's features go before the next is computed
        self._first, self._features = None, {}
        timesteps = self.timesteps[first : first + self.steps]
        count = len(timesteps)
        stacked = replace(
            self.cond,
            cloth_latents=self.cond.cloth_latents.repeat(count, 1, 1, 1),
            cloth_context=self.cond.cloth_context.repeat(count, 1, 1),
        )
        # rows [j*G, (j+1)*G) are step first+j's garments, in the order of cond.cloth_latents
        self._features = run_garment_net(
            self.model, timesteps.repeat_interleave(self.garments), stacked
        )
        self.model.bank.clear()
