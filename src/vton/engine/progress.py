"""Step progress as the device finishes the steps, without making the GPU wait for the host."""

from __future__ import annotations

from collections.abc import Callable

import torch

StepCallback = Callable[[int, int], None]


class StepProgress:
    """Calls on_step(steps_done, total) once per finished step. On CUDA it reports one step behind
    the host: it waits for step i only after step i+1 is queued, so the GPU always has work while
    the host waits (a per-step wait for the step just queued would leave the GPU idle while the
    host then issued the next). An exception from on_step (a cancellation) stops the loop there."""

    def __init__(self, on_step: StepCallback | None, total: int, device: torch.device) -> None:
        self.on_step, self.total = on_step, total
        self.stream = torch.cuda.current_stream(device) if device.type == "cuda" else None
        self._pending: torch.cuda.Event | None = None
        self._done = 0

    def queued(self) -> None:
        """A step's work has been queued on the device."""
        if self.on_step is None:
            return
        if self.stream is None:  # the CPU computes as it goes: the step is done
            self._report()
            return
        event = torch.cuda.Event()
        event.record(self.stream)
        if self._pending is not None:
            self._pending.synchronize()
            self._report()
        self._pending = event

    def finish(self) -> None:
        """After the last step: waits for it and reports it."""
        if self._pending is not None:
            self._pending.synchronize()
            self._pending = None
            self._report()

    def _report(self) -> None:
        self._done += 1
        if self.on_step is not None:
            self.on_step(self._done, self.total)
