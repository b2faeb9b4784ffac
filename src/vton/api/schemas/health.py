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
    person_preprocessing: bool = Field(
        False, description="A person registers from a photo alone (the weights are loaded)."
    )
    devices: list[str] = Field(default_factory=list)
    tiny_model: bool = Field(
        False,
        description="The model is `vton make-tiny-model`'s random weights: its images are noise.",
    )
    detail: str | None = None
