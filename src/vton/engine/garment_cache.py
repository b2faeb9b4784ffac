"""GarmentNet's features for every timestep of a schedule, kept per garment (opt-in).

GarmentNet's input at step t is the garment's clean latents, its text and t, so a garment's
features over a whole schedule are the same for every person who tries it on: kept on the device,
a repeat garment's try-on runs TryonNet alone (the same output; the step of the opt-in
`garment_features_once` mode, without changing anything). The price is memory: 157 MB per
timestep at 1024x768 with the full-size model, 3.1 GB per garment at 20 steps, hence opt-in with
a byte budget (an LRU).

A batch uses the cache only when every distinct garment is keyed; all of them cached: no
GarmentNet at all; otherwise GarmentNet runs for all of them as usual and each garment's features
are recorded as the steps go and stored once the last step has run (a failed request stores
nothing). Mixed batches (some garments cached) recompute the cached ones too: simpler, and the
case the cache is for is one garment tried by many people. If the device runs out of memory
while the cache holds something, the pipeline drops it and runs the batch again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch

from vton.engine.conditioning import DeviceLru
from vton.engine.step import GarmentFeatures

FeatureSource = Callable[[int], GarmentFeatures]


@dataclass
class GarmentTimeline:
    """One garment's features for every step of a schedule: name -> (steps, tokens, channels)."""

    features: dict[str, torch.Tensor]


class GarmentFeatureCache:
    """An LRU of garments' feature timelines on the device, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.lru = DeviceLru(max_bytes)
        # Batches whose garments were all cached (no GarmentNet) / that ran GarmentNet.
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.lru)

    def clear(self) -> None:
        self.lru = DeviceLru(self.lru.max_bytes)

    def reset(self) -> None:
        """Empty, and counting from zero (after the warm-up's placeholder garments)."""
        self.clear()
        self.hits = self.misses = 0

    def stats(self) -> dict[str, int]:
        return {
            "hits_total": self.hits,
            "misses_total": self.misses,
            "entries": len(self.lru),
            "bytes": self.lru.bytes,
            "max_bytes": self.lru.max_bytes,
        }

    def cached(self, keys: Sequence[Hashable]) -> FeatureSource | None:
        """Step i -> the features of `keys`' garments (in that order), when all are cached."""
        timelines = [self.lru.get(key) for key in keys]
        if any(t is None for t in timelines):
            self.misses += 1
            return None
        self.hits += 1
        found: list[GarmentTimeline] = timelines  # type: ignore[assignment]
        if len(found) == 1:  # a view of the stored rows, no copy
            return lambda i: {n: f[i : i + 1] for n, f in found[0].features.items()}
        names = list(found[0].features)
        return lambda i: {n: torch.stack([t.features[n][i] for t in found]) for n in names}

    def recording(
        self, source: FeatureSource, keys: Sequence[Hashable], steps: int
    ) -> FeatureSource:
        """`source`, whose features are also copied aside step by step and stored under `keys`
        once step `steps - 1` has been served (if the garments fit the budget together)."""
        timelines: list[GarmentTimeline] | None = None
        fits = True

        def step(i: int) -> GarmentFeatures:
            nonlocal timelines, fits
            features = source(i)
            if timelines is None and fits:
                per_step = sum(f.numel() * f.element_size() for f in features.values())
                fits = per_step * steps <= self.lru.max_bytes
                if fits:  # the budget covers what is being recorded too
                    self.lru.make_room(per_step * steps)
                    timelines = [_empty_timeline(features, steps) for _ in keys]
            if timelines is not None:
                for g, timeline in enumerate(timelines):
                    for name, rows in features.items():
                        timeline.features[name][i].copy_(rows[g])
                if i == steps - 1:
                    for key, timeline in zip(keys, timelines, strict=True):
                        self.lru.put(key, timeline)
                    timelines, fits = None, False  # stored once
            return features

        return step


def _empty_timeline(features: GarmentFeatures, steps: int) -> GarmentTimeline:
    return GarmentTimeline(
        {name: rows.new_empty((steps, *rows.shape[1:])) for name, rows in features.items()}
    )
