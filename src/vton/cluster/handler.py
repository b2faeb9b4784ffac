"""A GPU worker's handler: one queued try-on through this host's TryOnService, so its samples
batch with every other job the worker holds (the in-host scheduler, as in single-host mode).

    message -> artifacts (ArtifactLoader) -> result cache or in-host Scheduler -> post_process
            -> PNGs in the store under their result keys -> TryOnResult

The result keys are digests of everything that decides the image (service.results.ResultKey),
so a job run again after a crash writes the same bytes under the same keys. Step progress goes to
the job (throttled); a cancel request cancels the in-host job, which stops between steps.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime

from vton.cluster.messages import ItemResult, Timings, TryOnJob, TryOnProgress, TryOnResult
from vton.cluster.queue import JobContext, JobFailed
from vton.errors import VtonError
from vton.scheduler import ItemFinished, JobState, Progress, QueueFull
from vton.service import Service
from vton.service.tryon import ItemView, TryOn, TryOnOptions

log = logging.getLogger(__name__)

PHASES = ("queue", "encode", "diffusion", "decode")
FULL_RETRY_S = 0.2
"""How soon a job the in-host scheduler refused (full) is offered again."""


def error_code(error: BaseException) -> str:
    """An error's class name as a failure code: NotRegistered -> not_registered."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


def run_options(payload: TryOnJob) -> TryOnOptions:
    options = payload.options
    return TryOnOptions(
        steps=options.steps,
        scheduler=options.scheduler,
        guidance_scale=options.guidance_scale,
        seed=options.seed,
        paste_back=options.paste_back,
        framing=options.framing,
    )


def deadline_s(payload: TryOnJob) -> float | None:
    """Seconds left to the job's deadline, the in-host job's timeout (None: the worker's
    VTON_REQUEST_TIMEOUT_S); raises JobFailed once it has passed (a job waiting for room)."""
    if payload.deadline is None:
        return None
    left = (payload.deadline - datetime.now(UTC)).total_seconds()
    if left <= 0:
        raise JobFailed("deadline_exceeded", f"deadline {payload.deadline} passed")
    return left


class TryOnHandler:
    """The TryOnConsumer's handler on a worker host."""

    def __init__(self, service: Service, worker: str, progress_every_s: float = 0.25) -> None:
        """worker: the name results report; progress_every_s: the least time between two
        progress writes of one job (the last step is always written)."""
        self.service = service
        self.worker = worker
        self.progress_every_s = progress_every_s

    async def __call__(self, context: JobContext) -> TryOnResult:
        started = time.perf_counter()
        log.info("job %s taken (attempt %d)", context.job_id, context.attempt)
        tryon = await self._submit(context.payload)
        watcher = asyncio.create_task(self._cancel_when_asked(context, tryon))
        try:
            await self._follow(context, tryon)
        finally:
            watcher.cancel()
        snapshot = tryon.job.snapshot()
        if snapshot.state is JobState.CANCELLED:
            raise JobFailed("cancelled", str(snapshot.error or "cancelled while running"))
        views = await asyncio.to_thread(tryon.views)
        total_ms = (time.perf_counter() - started) * 1000.0
        items = [await self._item(tryon, i, view, total_ms) for i, view in enumerate(views)]
        return TryOnResult(items=items, worker=self.worker)

    async def _submit(self, payload: TryOnJob) -> TryOn:
        """Submits to the in-host scheduler, waiting while it is full (the prefetch bound keeps
        that short); an error that fails every garment fails the job."""
        ids = [garment.clothing_id for garment in payload.garments]
        while True:
            try:
                return await asyncio.to_thread(
                    self.service.tryons.submit_reference,
                    payload.user_id,
                    ids,
                    payload.category,
                    run_options(payload),
                    payload.kind,
                    False,
                    deadline_s(payload),
                )
            except QueueFull:
                await asyncio.sleep(FULL_RETRY_S)
            except VtonError as e:
                raise JobFailed(error_code(e), str(e)) from e

    async def _follow(self, context: JobContext, tryon: TryOn) -> None:
        """Forwards progress until the in-host job finishes."""
        last_write = float("-inf")
        finished_items = 0
        async for event in tryon.job.events():
            if isinstance(event, ItemFinished):
                finished_items += 1
            elif isinstance(event, Progress):
                now = time.monotonic()
                if event.step < event.total_steps and now - last_write < self.progress_every_s:
                    continue
                last_write = now
                progress = TryOnProgress(
                    step=event.step, total_steps=event.total_steps, items_finished=finished_items
                )
                await context.report(progress)

    async def _cancel_when_asked(self, context: JobContext, tryon: TryOn) -> None:
        await context.cancel_requested.wait()
        log.info("job %s: cancel requested", context.job_id)
        tryon.job.cancel("cancelled by the client")

    async def _item(self, tryon: TryOn, index: int, view: ItemView, total_ms: float) -> ItemResult:
        clothing_id = view.clothing_id or ""
        if view.png is None or view.result is None:
            error = view.error
            return ItemResult(
                index=index,
                clothing_id=clothing_id,
                state="cancelled" if view.state is JobState.CANCELLED else "failed",
                error_code=error_code(error) if error else "failed",
                error_message=str(error or "ended without an image")[:2000],
            )
        key = tryon.request.items[index].result_key
        if key is None:
            raise JobFailed("internal", f"item {index} succeeded without a result key")
        store_key = key.store_key()
        await asyncio.to_thread(self._ensure_stored, store_key, view.png)
        phases = view.result.timings_ms
        timings = Timings(
            artifacts=tryon.request.artifacts_ms,
            total=total_ms,
            **{phase: phases.get(phase, 0.0) for phase in PHASES},
        )
        return ItemResult(
            index=index,
            clothing_id=clothing_id,
            state="succeeded",
            result_key=store_key,
            timings=timings,
            batch_size=view.result.batch_size or None,
            cached=view.result.cached,
        )

    def _ensure_stored(self, store_key: str, png: bytes) -> None:
        """The result cache writes the PNG but forgives a failed write; a queued job's result
        must be readable from the store, so a missing one is written here (or the job fails)."""
        store = self.service.loader.store
        if not store.exists(store_key):
            store.put(store_key, png)
