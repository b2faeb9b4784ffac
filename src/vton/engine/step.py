"""One denoising step's network work: GarmentNet on the garments, then TryonNet on the batch.

`run_networks` is the eager computation (TryonNet alone when GarmentNet's features are given:
computed ahead for several steps, `garment_net_ahead`, or once, `garment_features_once`).
`CudaGraphSteps` captures it once per step shape in a CUDA graph and replays it: the same kernels
on the same inputs (so the same numbers), without re-issuing thousands of kernel launches from
Python every step, which dominates at small batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from vton.engine.checkpoint import TryOnModel
from vton.engine.conditioning import BatchConditioning

log = logging.getLogger(__name__)


GarmentFeatures = dict[str, torch.Tensor]


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
    bank.guidance, bank.index = guidance, cond.garment_index
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
    """GarmentNet on the batch's distinct garments; leaves its features in the bank and returns
    them by block name."""
    model.bank.clear()
    model.garment_net(cond.cloth_latents, timestep, encoder_hidden_states=cond.cloth_context)
    return dict(model.bank.features)


def _shape_key(
    latent_in: torch.Tensor,
    timestep: torch.Tensor,
    cond: BatchConditioning,
    guidance: bool,
    garment_features: GarmentFeatures | None,
):
    tensors = [latent_in, timestep, *_cond_tensors(cond), *(garment_features or {}).values()]
    return guidance, garment_features is None, tuple((tuple(t.shape), t.dtype) for t in tensors)


def _cond_tensors(cond: BatchConditioning) -> list[torch.Tensor]:
    index = [] if cond.garment_index is None else [cond.garment_index]
    return [
        cond.context,
        cond.text_embeds,
        cond.time_ids,
        cond.cloth_latents,
        cond.cloth_context,
        *index,
    ]


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    latent_in: torch.Tensor
    timestep: torch.Tensor
    cond: BatchConditioning
    garment_features: GarmentFeatures | None
    output: torch.Tensor


class CudaGraphSteps:
    """Replays one captured graph per input shape; all graphs share one memory pool (they
    never run at the same time).

    Every stream is made on the model's device, whichever device is current on the calling
    thread: torch.cuda.graph's own default capture stream is one per process, on the device
    current when it was first used, and a capture on another device's stream records nothing
    of this model's kernels (measured on two H100s: a model on cuda:1 captured from a thread
    on cuda:0 replayed stale images).
    """

    def __init__(self, model: TryOnModel) -> None:
        self.model = model
        self._graphs: dict[object, _Captured] = {}
        self._pool = torch.cuda.graph_pool_handle()
        self._capture_stream = torch.cuda.Stream(model.device)

    def __len__(self) -> int:
        return len(self._graphs)

    @torch.no_grad()
    def __call__(
        self,
        latent_in: torch.Tensor,
        timestep: torch.Tensor,
        cond: BatchConditioning,
        guidance: bool,
        garment_features: GarmentFeatures | None = None,
    ) -> torch.Tensor:
        timestep = timestep.reshape(1).to(latent_in.device)
        key = _shape_key(latent_in, timestep, cond, guidance, garment_features)
        captured = self._graphs.get(key)
        if captured is None:
            captured = self._capture(latent_in, timestep, cond, guidance, garment_features)
            self._graphs[key] = captured
        captured.latent_in.copy_(latent_in)
        captured.timestep.copy_(timestep)
        for static, given in zip(_cond_tensors(captured.cond), _cond_tensors(cond), strict=True):
            static.copy_(given)
        for name, static in (captured.garment_features or {}).items():
            static.copy_(garment_features[name])  # type: ignore[index]
        # mask, masked image and pose latents enter through latent_in (concatenated outside)
        with torch.cuda.device(self.model.device):  # replay on the stream the copies went to
            captured.graph.replay()
        return captured.output.clone()

    def _capture(
        self,
        latent_in: torch.Tensor,
        timestep: torch.Tensor,
        cond: BatchConditioning,
        guidance: bool,
        garment_features: GarmentFeatures | None,
    ) -> _Captured:
        static_in, static_t = latent_in.clone(), timestep.clone()
        static_features = (
            None
            if garment_features is None
            else {name: t.clone() for name, t in garment_features.items()}
        )
        static_cond = BatchConditioning(
            **{
                name: (value.clone() if isinstance(value, torch.Tensor) else value)
                for name, value in vars(cond).items()
            }
        )
        device = self.model.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up: cuDNN plan choices, lazy inits
            for _ in range(2):
                run_networks(
                    self.model, static_in, static_t, static_cond, guidance, static_features
                )
        torch.cuda.current_stream(device).wait_stream(side)
        self._capture_stream.wait_stream(torch.cuda.current_stream(device))
        graph = torch.cuda.CUDAGraph()
        # thread_local: other threads (garment registration runs the text encoders) may use the
        # GPU while this one captures; their work is neither captured nor an error.
        with torch.cuda.graph(
            graph,
            pool=self._pool,
            stream=self._capture_stream,
            capture_error_mode="thread_local",
        ):
            output = run_networks(
                self.model, static_in, static_t, static_cond, guidance, static_features
            )
        log.info(
            "captured a CUDA graph for batch shape %s%s",
            tuple(latent_in.shape),
            "" if garment_features is None else " (TryonNet only, garment features given)",
        )
        return _Captured(graph, static_in, static_t, static_cond, static_features, output)
