"""Liveness, readiness and Prometheus metrics (no token needed)."""

from __future__ import annotations

import math

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vton.api.deps import RuntimeDep
from vton.api.schemas.health import Alive, Readiness
from vton.engine.tiny import UNET_CONFIG
from vton.service import Service

router = APIRouter(tags=["health"])


def runs_tiny_model(service: Service) -> bool:
    """The loaded networks have the tiny model's widths (no real checkpoint has them)."""
    tiny = tuple(UNET_CONFIG["block_out_channels"])
    return any(
        tuple(engine.pipeline.model.tryon_net.config.block_out_channels) == tiny
        for engine in service.engines
    )


@router.get("/health", response_model=Alive)
def health() -> Alive:
    """The process is alive (the model may still be loading)."""
    return Alive()


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """The model (and the person preprocessing models, where configured) is loaded and warmed up
    and the store answers (the circuit breaker's state: no wait on the store): 200, else 503."""
    service = runtime.service
    if service is None:
        body = Readiness(
            ready=False,
            model_loaded=False,
            warmed_up=False,
            store_reachable=False,
            detail=runtime.load_error or "the model is loading",
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    store_ok = service.store_reachable()
    body = Readiness(
        ready=store_ok,
        model_loaded=True,
        warmed_up=service.settings.warmup,
        store_reachable=store_ok,
        person_preprocessing=service.preprocessing,
        devices=[engine.device for engine in service.engines],
        tiny_model=runs_tiny_model(service),
        detail=None if store_ok else "the store does not answer",
    )
    if store_ok:
        return JSONResponse(body.model_dump(mode="json"))
    retry_after = str(max(1, math.ceil(service.store.retry_after_s())))
    return JSONResponse(
        body.model_dump(mode="json"), status_code=503, headers={"Retry-After": retry_after}
    )


@router.get("/metrics", response_class=Response)
def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)
