"""Where each denoising step's garment features come from, decided once per batch.

GarmentNet's input at step t is the garments' clean latents, their text and t: nothing of the
denoising trajectory. So its features can be computed wherever is cheapest, with the same result:
- inside the step, GarmentNet then TryonNet in one CUDA graph: when `garment_net_ahead` is off, or
  when a batch's garments fill a GarmentNet pass alone;
- ahead (`garment_net_ahead`, the default): for several coming timesteps in one pass of about
  `garment_ahead_rows` rows (timesteps x garments), sliced per step; at batch 1 the pass runs k
  times larger matmuls, which use the GPU far better than k passes over one row (bench/NOTES.md:
  "GarmentNet ahead");
- from the opt-in per-garment cache: every timestep's features of a keyed garment kept on the
  device, so a repeat garment's try-on runs TryonNet alone (NOTES: "garment feature cache");
- once (`garment_features_once`, opt-in, CHANGES the output): GarmentNet at the first timestep
  only, its features reused by every step.

When every sample of a batch names one garment, GarmentNet runs on that garment alone and its
features are given to every row, outside the step.

`GarmentFeaturePlanner.plan` makes the decision for a batch and returns the feature source with
the `StepKey` of the step it leads to. The denoising loop and the warm-up both go through its
`step_key`, so the warm-up captures exactly the step graphs that serving reaches (every batch
size, guidance on and off, each of `warm_up_layouts`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace

import torch

from vton.cache.lru import Lru
from vton.engine.checkpoint import TryOnModel
from vton.engine.conditioning import BatchConditioning, tensor_bytes
from vton.engine.optimize import EngineOptimizations
from vton.engine.step import GarmentFeatures, StepKey, run_garment_net

FeatureSource = Callable[[int], GarmentFeatures | None]
"""Step i -> the garment features given to step i, or None: GarmentNet runs inside the step."""


def steps_per_pass(garments: int, rows: int) -> int:
    """How many timesteps one GarmentNet pass covers for `garments` garments when a pass should
    have about `rows` rows: 1 (no look-ahead) once the garments alone fill a pass."""
    return max(1, rows // max(1, garments))


class GarmentFeaturePlanner:
    """Chooses, per batch, how GarmentNet's features reach the steps; holds the feature cache.

    The mode is chosen once, from the optimisations: once, ahead in passes of about
    `garment_ahead_rows` rows, or every step inside the step. Per batch, two things about its
    garments matter: whether every sample names the same garment (GarmentNet then runs on that
    one garment and its features are given to every row), and, with the cache on, whether every
    garment is keyed (`garment_key`; inline requests name none) so the cache serves the batch.
    """

    def __init__(self, model: TryOnModel, optimizations: EngineOptimizations) -> None:
        self.model = model
        self.once = optimizations.garment_features_once
        self.ahead_rows = optimizations.garment_ahead_rows if optimizations.garment_net_ahead else 0
        cache_bytes = optimizations.garment_feature_cache_bytes
        self.cache = GarmentFeatureCache(cache_bytes) if cache_bytes > 0 else None

    @staticmethod
    def warm_up_layouts(samples: int) -> list[tuple[Hashable | None, ...]]:
        """The garment keys of batches of `samples` that between them reach every step such a
        batch can lead to (`step_key` reads nothing else of the garments): one keyed garment
        each, unkeyed garments, and one keyed garment shared by all."""
        own = tuple(f"vton-warm-up-{i}" for i in range(samples))
        layouts: list[tuple[Hashable | None, ...]] = [own, (None,) * samples]
        if samples > 1:
            layouts.append((own[0],) * samples)
        return layouts

    def step_key(
        self, garment_keys: Sequence[Hashable | None], guidance: bool, latent_size: tuple[int, int]
    ) -> StepKey:
        """The step a batch with these garments leads to."""
        samples = len(garment_keys)
        outside = self.once or _shared(garment_keys) or self._cacheable(garment_keys)
        in_step = not outside and self._steps_ahead(samples, give=False) is None
        return StepKey(samples, guidance, in_step, latent_size)

    def plan(
        self,
        cond: BatchConditioning,
        guidance: bool,
        timesteps: torch.Tensor,
        schedule: Hashable,
    ) -> tuple[FeatureSource, StepKey]:
        """The batch's feature source and its step key. `timesteps` are the schedule's, on the
        model's device; `schedule` names them for the cache."""
        keys = cond.garment_keys
        latent_size = (cond.cloth_latents.shape[-2], cond.cloth_latents.shape[-1])
        step_key = self.step_key(keys, guidance, latent_size)
        if not _shared(keys):
            return self._source(cond, timesteps, schedule, give=False), step_key
        one = replace(
            cond,
            cloth_latents=cond.cloth_latents[:1],
            cloth_context=cond.cloth_context[:1],
            garment_keys=keys[:1],
        )
        return _broadcast(self._source(one, timesteps, schedule, give=True), len(keys)), step_key

    def _source(
        self, cond: BatchConditioning, timesteps: torch.Tensor, schedule: Hashable, give: bool
    ) -> FeatureSource:
        """`cond`'s garments' features; `give`: outside the step even where the mode would run
        GarmentNet inside it."""
        if self.once:
            return _once(self.model, cond, timesteps)
        cache_keys = self._cache_keys(cond.garment_keys, schedule)
        steps = self._steps_ahead(cond.cloth_latents.shape[0], give or cache_keys is not None)
        if steps is None:
            return lambda _: None
        passes = AheadPasses(self.model, cond, timesteps, steps)
        if cache_keys is None or self.cache is None:
            return passes
        return self.cache.cached(cache_keys) or self.cache.recording(
            passes, cache_keys, len(timesteps)
        )

    def _steps_ahead(self, garments: int, give: bool) -> int | None:
        """Timesteps per GarmentNet pass ahead of the steps, or None: GarmentNet inside the
        step. `give`: the features must leave the step (to be recorded for the cache, or given
        to several rows) even one timestep at a time."""
        steps = steps_per_pass(garments, self.ahead_rows) if self.ahead_rows else 1
        return steps if steps > 1 or give else None

    def _cacheable(self, garment_keys: Sequence[Hashable | None]) -> bool:
        return self.cache is not None and bool(garment_keys) and None not in garment_keys

    def _cache_keys(
        self, garment_keys: Sequence[Hashable | None], schedule: Hashable
    ) -> list[Hashable] | None:
        """The cache keys of the batch's garments, when the cache applies to all of them."""
        if not self._cacheable(garment_keys):
            return None
        return [(key, schedule) for key in garment_keys]


def _shared(garment_keys: Sequence[Hashable | None]) -> bool:
    """Every sample of the batch (two or more) names one garment."""
    return len(garment_keys) > 1 and garment_keys[0] is not None and len(set(garment_keys)) == 1


def _broadcast(source: FeatureSource, samples: int) -> FeatureSource:
    """One garment's features given to every row: GarmentNet ran once for the whole batch."""

    def step(i: int) -> GarmentFeatures | None:
        features = source(i)
        if features is None:
            raise ValueError("a shared garment's features must be computed outside the step")
        return {name: f.expand(samples, *f.shape[1:]) for name, f in features.items()}

    return step


def _once(model: TryOnModel, cond: BatchConditioning, timesteps: torch.Tensor) -> FeatureSource:
    """GarmentNet at the first timestep, on first use; the same features for every step."""
    computed: list[GarmentFeatures] = []

    def source(_: int) -> GarmentFeatures:
        if not computed:
            computed.append(run_garment_net(model, timesteps[0], cond))
        return computed[0]

    return source


class AheadPasses:
    """Step i's garment features, computed `steps` timesteps at a time and sliced per step.

    Only one pass's features are held at a time (steps x G rows of every transformer block's
    features: NOTES "garment feature cache" gives their size at 1024x768).
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


@dataclass
class GarmentTimeline:
    """One garment's features for every step of a schedule: name -> (steps, tokens, channels)."""

    features: dict[str, torch.Tensor]


class GarmentFeatureCache:
    """Keyed garments' feature timelines on the device, in an LRU bounded in bytes (opt-in:
    3.1 GB per garment at 20 steps and 1024x768, NOTES "garment feature cache").

    A batch is served from the cache only when every one of its garments is cached; otherwise
    GarmentNet runs for all of them as usual, and each garment's features are recorded as the
    steps go and stored once the last step has run (a failed request stores nothing). Mixed
    batches (some garments cached) recompute the cached ones too: simpler, and the case the cache
    is for is one garment tried by many people. If the device runs out of memory while the cache
    holds something, the pipeline drops it and runs the batch again.
    """

    def __init__(self, max_bytes: int) -> None:
        self.lru: Lru[Hashable, GarmentTimeline] = Lru(max_bytes, size=tensor_bytes)
        # Batches whose garments were all cached (no GarmentNet) / that ran GarmentNet.
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.lru)

    def clear(self) -> None:
        self.lru.clear()

    def reset(self) -> None:
        """Empty, and counting from zero (after the warm-up's placeholder garments)."""
        self.lru = Lru(self.lru.max_bytes, size=tensor_bytes)
        self.hits = self.misses = 0

    def stats(self) -> dict[str, int]:
        """The LRU's sizes and evictions; hits and misses counted per batch."""
        return self.lru.stats() | {"hits_total": self.hits, "misses_total": self.misses}

    def cached(self, keys: Sequence[Hashable]) -> FeatureSource | None:
        """Step i -> the features of `keys`' garments (in that order), when all are cached."""
        timelines = [self.lru.peek(key) for key in keys]
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
        self, source: Callable[[int], GarmentFeatures], keys: Sequence[Hashable], steps: int
    ) -> Callable[[int], GarmentFeatures]:
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
