"""Liveness and readiness."""

from __future__ import annotations

from pydantic import Field

from vton.api.schemas.common import ApiModel


class Alive(ApiModel):
    status: str = "alive"


class Readiness(ApiModel):
    ready: bool
    model_loaded: bool
    warmed_up: bool
    store_reachable: bool
    devices: list[str] = Field(default_factory=list)
    detail: str | None = None
