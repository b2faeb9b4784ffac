"""Fakes shared by tests: stand-ins for the layer below, with the same call signatures."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from vton.engine.types import DiffusionOptions, TryOnOutput, TryOnSample
from vton.errors import InvalidInput

GATE_TIMEOUT_S = 10.0


def make_sample(tag: str = "", seed: int = 42) -> TryOnSample:
    """A tiny sample; the fake pipeline reads its tag from the description."""
    image = Image.new("RGB", (12, 16), (128, 128, 128))
    mask = Image.new("L", (12, 16), 255)
    return TryOnSample(image, mask, image, image, description=tag, seed=seed)


@dataclass
class FakeCall:
    """One call of the fake pipeline, as it went."""

    tags: tuple[str, ...]
    options: DiffusionOptions
    steps_done: int = 0
    outcome: str = "running"
    """running, then ok, oom, invalid or aborted (on_step raised)."""
    ended: threading.Event = field(default_factory=threading.Event)


class FakePipeline:
    """Stands in for vton.engine.pipeline.TryOnPipeline: the same call, no model.

    A sample is known by its tag (its description). A call raises torch.cuda.OutOfMemoryError when
    it holds more than oom_above samples or a tag in oom_tags, and InvalidInput for a tag in
    invalid_tags. Before each step from hold_after on it waits for `gate` (open by default; a test
    clears it to hold the worker, and `blocked` tells it the fake is waiting). It sleeps step_s per
    step and calls on_step(steps_done, steps) like the real pipeline. Images are filled with a value
    from the seed (equal seeds, equal images); tags in nan_tags give NaN, in black_tags all black.
    """

    def __init__(
        self,
        *,
        step_s: float = 0.0,
        oom_above: int | None = None,
        oom_tags: Collection[str] = (),
        invalid_tags: Collection[str] = (),
        nan_tags: Collection[str] = (),
        black_tags: Collection[str] = (),
        hold_after: int = 0,
    ) -> None:
        self.step_s = step_s
        self.oom_above = oom_above
        self.oom_tags = set(oom_tags)
        self.invalid_tags = set(invalid_tags)
        self.nan_tags = set(nan_tags)
        self.black_tags = set(black_tags)
        self.hold_after = hold_after
        self.gate = threading.Event()
        self.gate.set()
        self.blocked = threading.Event()
        self.calls: list[FakeCall] = []
        self._lock = threading.Lock()

    def batch_sizes(self) -> list[int]:
        with self._lock:
            return [len(call.tags) for call in self.calls]

    def __call__(
        self,
        samples: list[TryOnSample],
        options: DiffusionOptions,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[TryOnOutput]:
        tags = [sample.description or "" for sample in samples]
        call = FakeCall(tuple(tags), options)
        with self._lock:
            self.calls.append(call)
        try:
            return self._run(call, samples, options, on_step)
        finally:
            call.ended.set()

    def _run(
        self,
        call: FakeCall,
        samples: list[TryOnSample],
        options: DiffusionOptions,
        on_step: Callable[[int, int], None] | None,
    ) -> list[TryOnOutput]:
        if (self.oom_above is not None and len(samples) > self.oom_above) or self.oom_tags & set(
            call.tags
        ):
            call.outcome = "oom"
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        if bad := self.invalid_tags & set(call.tags):
            call.outcome = "invalid"
            raise InvalidInput(f"garment image: unreadable ({sorted(bad)[0]})")
        for step in range(options.steps):
            if step >= self.hold_after:
                self._pass_gate()
            time.sleep(self.step_s)
            call.steps_done = step + 1
            if on_step is not None:
                try:
                    on_step(step + 1, options.steps)
                except Exception:
                    call.outcome = "aborted"
                    raise
        call.outcome = "ok"
        return [
            self._output(sample, tag, options)
            for sample, tag in zip(samples, call.tags, strict=True)
        ]

    def _pass_gate(self) -> None:
        if self.gate.is_set():
            return
        self.blocked.set()
        if not self.gate.wait(GATE_TIMEOUT_S):
            raise RuntimeError("fake pipeline: the test never opened the gate")

    def _output(self, sample: TryOnSample, tag: str, options: DiffusionOptions) -> TryOnOutput:
        if tag in self.nan_tags:
            value = float("nan")
        elif tag in self.black_tags:
            value = -1.0
        else:
            value = (sample.seed % 100) / 100 * 1.8 - 0.9
        image = torch.full((3, options.height, options.width), value)
        timings = {"encode": 1.0, "diffusion": float(options.steps), "decode": 1.0}
        pixels = ((image.nan_to_num(-1.0) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        return TryOnOutput(
            image=image, pil=Image.fromarray(np.ascontiguousarray(pixels)), timings_ms=timings
        )
