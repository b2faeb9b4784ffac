"""Service objects to response bodies (and the request's log fields), in one place."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict

from vton.api.schemas.common import Timings
from vton.api.schemas.fitting import BatchItem, BatchTryOnResponse, TryOnResponse
from vton.api.schemas.jobs import JobItem, JobStatus, WebhookStatus
from vton.api.schemas.registration import ClothingInfo, DetectionOut, FitOut, PersonInfo
from vton.api.webhooks import Delivery
from vton.preprocess import GarmentManifest, PersonManifest
from vton.scheduler import JobState
from vton.service.tryon import ItemView, TryOn

PHASES = ("queue", "encode", "diffusion", "decode")


def b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def elapsed_ms(tryon: TryOn) -> float:
    return (time.perf_counter() - tryon.request.started) * 1000.0


def timings(tryon: TryOn, view: ItemView, total_ms: float) -> Timings:
    phases: Mapping[str, float] = view.result.timings_ms if view.result else {}
    return Timings(
        artifacts=tryon.request.artifacts_ms,
        png=phases.get("png", 0.0),
        total=total_ms,
        **{phase: phases.get(phase, 0.0) for phase in PHASES},
    )


def describe(error: Exception | None) -> str | None:
    """`Type: message`, the form every error takes inside a response body."""
    return None if error is None else f"{type(error).__name__}: {error}"


def single_response(tryon: TryOn, view: ItemView, png: bytes) -> TryOnResponse:
    return TryOnResponse(
        clothing_id=view.clothing_id,
        image=b64(png),
        timings=timings(tryon, view, elapsed_ms(tryon)),
        cache_hits=tryon.request.cache_hits,
        result_cached=bool(view.result and view.result.cached),
        stale_seconds=tryon.request.stale_s,
    )


def batch_response(tryon: TryOn, views: list[ItemView]) -> BatchTryOnResponse:
    total = elapsed_ms(tryon)
    results = [
        BatchItem(
            clothing_id=view.clothing_id or "",
            success=view.png is not None,
            image=b64(view.png) if view.png is not None else None,
            processing_time=total,
            error=describe(view.error),
            result_cached=bool(view.result and view.result.cached),
            timings=timings(tryon, view, total) if view.png is not None else None,
        )
        for view in views
    ]
    return BatchTryOnResponse(
        results=results,
        total_processing_time=total,
        cache_hits=tryon.request.cache_hits,
        stale_seconds=tryon.request.stale_s,
    )


def result_path(job_id: str, index: int) -> str:
    """Where a job item's image is read (GET /api/jobs/{id}/results/{index})."""
    return f"/api/jobs/{job_id}/results/{index}"


Encode = Callable[[int, bytes], bytes]
"""(item index, finished PNG) -> the image in the job's output format."""


def job_status(
    tryon: TryOn,
    views: list[ItemView],
    inline: Encode | None = None,
    base_url: str = "",
) -> JobStatus:
    """The job with its items (views; none: without results). inline: each succeeded item's
    image in the body as well, so encoded (may encode: call from a thread); base_url: prefixed
    to the image URLs."""
    snapshot = tryon.job.snapshot()
    end = snapshot.finished_at or time.time()
    total = (end - snapshot.created_at) * 1000.0
    results = []
    for i, view in enumerate(views):
        image = b64(inline(i, view.png)) if inline and view.png is not None else None
        results.append(job_item(tryon, i, view, total, image, base_url))
    return JobStatus(
        job_id=snapshot.id,
        type=tryon.request.kind,
        state=snapshot.state,
        step=snapshot.step,
        total_steps=snapshot.total_steps,
        error=describe(snapshot.error),
        created_at=snapshot.created_at,
        started_at=snapshot.started_at,
        finished_at=snapshot.finished_at,
        deadline_at=snapshot.created_at + tryon.job.timeout_s,
        results=results,
    )


def job_item(
    tryon: TryOn,
    index: int,
    view: ItemView,
    total_ms: float,
    image: str | None = None,
    base_url: str = "",
) -> JobItem:
    """One item; image: its base64 body when asked, else only its URL."""
    succeeded = view.png is not None
    return JobItem(
        index=index,
        clothing_id=view.clothing_id,
        state=view.state,
        success=view.state is JobState.SUCCEEDED,
        image_url=base_url + result_path(tryon.job.id, index) if succeeded else None,
        image=image,
        error=describe(view.error),
        result_cached=bool(view.result and view.result.cached),
        timings=timings(tryon, view, total_ms) if succeeded else None,
        batch_size=(view.result.batch_size or None) if view.result else None,
    )


def webhook_status(delivery: Delivery) -> WebhookStatus:
    return WebhookStatus.model_validate(asdict(delivery))


def log_fields(tryon: TryOn, views: list[ItemView]) -> dict[str, object]:
    """The request's log fields: ids, cache sources, and each phase's ms (the slowest item's)."""
    results = [v.result for v in views if v.result is not None]
    kept = tryon.request
    fields: dict[str, object] = {
        "kind": kept.kind,
        "job": tryon.job.id,
        "clothing": ",".join(kept.clothing_ids) or "inline",
        "cache": ",".join(f"{k}:{v}" for k, v in kept.cache_hits.items()) or "-",
        "result_cached": bool(results) and all(r.cached for r in results),
        "ok": f"{len(results)}/{len(views)}",
        "artifacts_ms": kept.artifacts_ms,
    }
    if kept.stale_s is not None:  # the store did not answer: remembered manifests were used
        fields["stale_s"] = kept.stale_s
    for phase in PHASES:
        fields[f"{phase}_ms"] = max((r.timings_ms.get(phase, 0.0) for r in results), default=0.0)
    return fields


def person_info(manifest: PersonManifest) -> PersonInfo:
    fit = manifest.fit
    detection = manifest.detection
    warnings = []
    if detection is not None and detection.people > 1:
        warnings.append(f"{detection.people} people in the photo: the largest one was used")
    return PersonInfo(
        version=manifest.version,
        categories=list(manifest.categories),
        fit=FitOut.model_validate(fit.model_dump(exclude={"crop_box"})) if fit else None,
        framing=fit.mode if fit else None,
        detection=DetectionOut.model_validate(detection.model_dump()) if detection else None,
        warnings=warnings,
        created_at=manifest.created_at,
    )


def clothing_info(manifest: GarmentManifest) -> ClothingInfo:
    return ClothingInfo(
        clothing_id=manifest.clothing_id,
        category=manifest.category,
        description=manifest.description,
        version=manifest.version,
        created_at=manifest.created_at,
    )
