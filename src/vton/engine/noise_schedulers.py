"""Noise schedulers, each built from the checkpoint's scheduler config."""

from __future__ import annotations

from typing import Any

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from vton.errors import InvalidInput

SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "dpmpp": DPMSolverMultistepScheduler,
    "unipc": UniPCMultistepScheduler,
}

# Per-scheduler keyword arguments of `step` (DDIM runs deterministically, with eta 0).
STEP_KWARGS: dict[str, dict[str, Any]] = {"ddim": {"eta": 0.0}}


def build_scheduler(name: str, config: dict[str, Any]) -> SchedulerMixin:
    """A fresh scheduler (they are stateful) of kind `name` from the checkpoint's config."""
    if name not in SCHEDULERS:
        raise InvalidInput(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    scheduler_class = SCHEDULERS[name]
    if name == "dpmpp":
        return scheduler_class.from_config(config, algorithm_type="dpmsolver++")
    return scheduler_class.from_config(config)
