"""One denoising step's network work: GarmentNet on the garments, then TryonNet on the batch.

`run_networks` is the eager computation (TryonNet alone when GarmentNet's features are given; see
garment_features.py for where they come from). `StepGraphs` captures it once per `StepKey` in a
CUDA graph and replays it: the same kernels on the same inputs (so the same numbers), without
re-issuing thousands of kernel launches from Python every step, which dominates at small batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from vton.engine.checkpoint import TryOnModel
from vton.engine.conditioning import BatchConditioning

log = logging.getLogger(__name__)


GarmentFeatures = dict[str, torch.Tensor]


@dataclass(frozen=True)
class StepKey:
    """What fixes the shapes of a denoising step's tensors, so one CUDA graph serves each key.

    Every other shape follows from these: TryonNet's rows are `samples`, doubled with guidance;
    GarmentNet (or the given features) has one row per sample; the text and image token counts
    belong to the model."""

    samples: int
    guidance: bool
    garment_net_in_step: bool  # else TryonNet alone, on garment features given to the step
    latent_size: tuple[int, int]


@torch.no_grad()
def run_networks(
    model: TryOnModel,
    latent_in: torch.Tensor,
    timestep: torch.Tensor,
    cond: BatchConditioning,
    guidance: bool,
    garment_features: GarmentFeatures | None = None,
) -> torch.Tensor:
    """TryonNet's noise prediction for the (guidance-doubled) batch at `timestep`: GarmentNet
    runs first, unless `garment_features` (from `run_garment_net`) are given to reuse."""
    bank = model.bank
    if garment_features is None:
        run_garment_net(model, timestep, cond)
    else:
        bank.features = garment_features
    bank.guidance = guidance
    noise = model.tryon_net(
        latent_in,
        timestep,
        encoder_hidden_states=cond.context,
        added_cond_kwargs={"text_embeds": cond.text_embeds, "time_ids": cond.time_ids},
    ).sample
    bank.clear()
    return noise


@torch.no_grad()
def run_garment_net(
    model: TryOnModel, timestep: torch.Tensor, cond: BatchConditioning
) -> GarmentFeatures:
    """GarmentNet on the batch's garments; leaves its features in the bank and returns them by
    block name."""
    model.bank.clear()
    model.garment_net(cond.cloth_latents, timestep, encoder_hidden_states=cond.cloth_context)
    return dict(model.bank.features)


def _cond_tensors(cond: BatchConditioning) -> list[torch.Tensor]:
    """The conditioning tensors a step reads directly (mask, masked image and pose latents
    enter through latent_in, concatenated outside)."""
    return [cond.context, cond.text_embeds, cond.time_ids, cond.cloth_latents, cond.cloth_context]


Step = Callable[
    [torch.Tensor, torch.Tensor, BatchConditioning, GarmentFeatures | None], torch.Tensor
]
"""A captured step: (latent_in, timestep, cond, garment features) -> noise prediction."""

Capture = Callable[
    [TryOnModel, torch.Tensor, torch.Tensor, BatchConditioning, bool, GarmentFeatures | None],
    Step,
]
"""Captures the step of these inputs: (model, latent_in, timestep, cond, guidance, features)."""


class StepGraphs:
    """The step dispatcher: replays the step captured for each `StepKey`.

    Until `freeze` (the end of the warm-up) an unknown key is captured on first use; after it, an
    unknown key runs eagerly and is counted in `eager_steps` (a metric), so no user's request
    pays for a capture (or a compilation) inside its own latency, as vLLM's CUDA-graph
    dispatcher does. `capture` is the seam: CUDA graphs by default, a recorder in CPU tests.
    """

    def __init__(self, model: TryOnModel, capture: Capture | None = None) -> None:
        self.model = model
        self._capture = capture or CudaGraphCapture(model.device)
        self._steps: dict[StepKey, Step] = {}
        self.frozen = False
        self.eager_steps = 0
        self._missed: set[StepKey] = set()

    def __len__(self) -> int:
        return len(self._steps)

    def keys(self) -> frozenset[StepKey]:
        return frozenset(self._steps)

    def freeze(self) -> None:
        """From now on a key without a captured step runs eagerly instead of being captured."""
        self.frozen = True

    @torch.no_grad()
    def __call__(
        self,
        key: StepKey,
        latent_in: torch.Tensor,
        timestep: torch.Tensor,
        cond: BatchConditioning,
        guidance: bool,
        garment_features: GarmentFeatures | None = None,
    ) -> torch.Tensor:
        timestep = timestep.reshape(1).to(latent_in.device)
        step = self._steps.get(key)
        if step is None and self.frozen:
            if key not in self._missed:
                self._missed.add(key)
                log.warning("step %s was not captured at warm-up: it runs eagerly", key)
            self.eager_steps += 1
            return run_networks(self.model, latent_in, timestep, cond, guidance, garment_features)
        if step is None:
            step = self._capture(self.model, latent_in, timestep, cond, guidance, garment_features)
            self._steps[key] = step
        return step(latent_in, timestep, cond, garment_features)


class CudaGraphCapture:
    """Captures steps in CUDA graphs that share one memory pool and their static inputs (they
    never run at the same time, and each replay first copies all of its inputs in): graphs
    whose inputs have the same name, shape and dtype read them from one buffer. The guidance-on
    and guidance-off steps of a batch size take the same garment features, and a shared
    garment's features are expanded to every row: without sharing, each graph kept its own copy
    of 157 MB per feature row at 1024x768 (bench/NOTES.md, "warm-up captures every step key").

    Every stream is made on the model's device, whichever device is current on the calling
    thread: torch.cuda.graph's own default capture stream is one per process, on the device
    current when it was first used, and a capture on another device's stream records nothing
    of this model's kernels (bench/NOTES.md: "CUDA graphs on the model's own device").
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._pool = torch.cuda.graph_pool_handle()
        self._stream = torch.cuda.Stream(device)
        self._inputs: dict[tuple[str, tuple[int, ...], torch.dtype], torch.Tensor] = {}

    def _static(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """The static input buffer of `name` at `value`'s shape and dtype, holding `value`."""
        key = (name, tuple(value.shape), value.dtype)
        buffer = self._inputs.get(key)
        if buffer is None:
            buffer = self._inputs[key] = value.clone()
        else:
            buffer.copy_(value)
        return buffer

    def __call__(
        self,
        model: TryOnModel,
        latent_in: torch.Tensor,
        timestep: torch.Tensor,
        cond: BatchConditioning,
        guidance: bool,
        garment_features: GarmentFeatures | None,
    ) -> Step:
        static_in = self._static("latent_in", latent_in)
        static_t = self._static("timestep", timestep)
        static_features = (
            None
            if garment_features is None
            else {name: self._static(f"feature:{name}", t) for name, t in garment_features.items()}
        )
        static_cond = replace(cond)
        for name, value in vars(cond).items():
            if isinstance(value, torch.Tensor):
                setattr(static_cond, name, self._static(f"cond:{name}", value))
        device = self.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up: cuDNN plan choices, lazy inits
            for _ in range(2):
                run_networks(model, static_in, static_t, static_cond, guidance, static_features)
        torch.cuda.current_stream(device).wait_stream(side)
        self._stream.wait_stream(torch.cuda.current_stream(device))
        graph = torch.cuda.CUDAGraph()
        # thread_local: other threads (garment registration runs the text encoders) may use the
        # GPU while this one captures; their work is neither captured nor an error.
        with torch.cuda.graph(
            graph, pool=self._pool, stream=self._stream, capture_error_mode="thread_local"
        ):
            output = run_networks(
                model, static_in, static_t, static_cond, guidance, static_features
            )
        log.info(
            "captured a CUDA graph for batch shape %s%s",
            tuple(latent_in.shape),
            "" if garment_features is None else " (TryonNet only, garment features given)",
        )
        return _CudaGraphStep(
            device, graph, static_in, static_t, static_cond, static_features, output
        )


@dataclass
class _CudaGraphStep:
    device: torch.device
    graph: torch.cuda.CUDAGraph
    latent_in: torch.Tensor
    timestep: torch.Tensor
    cond: BatchConditioning
    garment_features: GarmentFeatures | None
    output: torch.Tensor

    def __call__(
        self,
        latent_in: torch.Tensor,
        timestep: torch.Tensor,
        cond: BatchConditioning,
        garment_features: GarmentFeatures | None,
    ) -> torch.Tensor:
        pairs = [
            (self.latent_in, latent_in),
            (self.timestep, timestep),
            *zip(_cond_tensors(self.cond), _cond_tensors(cond), strict=True),
        ]
        if (self.garment_features is None) != (garment_features is None):
            raise RuntimeError("a step key's garment features differ from its captured step's")
        for name, static in (self.garment_features or {}).items():
            pairs.append((static, garment_features[name]))  # type: ignore[index]
        for static, given in pairs:
            # copy_ would broadcast a smaller tensor silently: a StepKey missing a shape is a bug
            if static.shape != given.shape:
                raise RuntimeError(
                    f"step input {tuple(given.shape)} replayed into a graph captured for "
                    f"{tuple(static.shape)}: the step key misses a shape"
                )
            static.copy_(given)
        with torch.cuda.device(self.device):  # replay on the stream the copies went to
            self.graph.replay()
        return self.output.clone()
