"""Synchronous try-ons: by reference (v2), inline (v1), and a batch of garments."""

from __future__ import annotations

from pydantic import Field

from vton.api.schemas.common import ApiModel, ClothingId, Timings, TryOnOptionsIn
from vton.cache import Source
from vton.store.ids import Category


class SingleTryOnRequest(TryOnOptionsIn):
    clothing_id: ClothingId
    category: Category | None = Field(
        None, description="Try the garment on in this category instead of its own."
    )


class TryOnResponse(ApiModel):
    clothing_id: str | None = None
    image: str = Field(description="The result, base64 PNG.")
    timings: Timings
    cache_hits: dict[str, Source] = Field(
        description="Where the person's and each garment's artifacts came from."
    )
    result_cached: bool = Field(description="Answered from an identical earlier request.")
    stale_seconds: float | None = Field(
        None,
        description="Set when the store did not answer and the registrations were read from the "
        "server's caches: how old they may be (at most VTON_STALE_IF_ERROR_S seconds).",
    )


class BatchTryOnRequest(TryOnOptionsIn):
    clothing_ids: list[ClothingId] = Field(
        min_length=1,
        description="Up to VTON_MAX_BATCH_ITEMS garments (the schema's maxItems), each once, "
        "tried on one person.",
        json_schema_extra={"uniqueItems": True},  # the server refuses a repeat itself
    )
    category: Category | None = None


class BatchItem(ApiModel):
    clothing_id: str
    success: bool
    image: str | None = Field(None, description="The result, base64 PNG, when successful.")
    processing_time: float = Field(description="Milliseconds from the request to this result.")
    error: str | None = None
    result_cached: bool = False
    timings: Timings | None = None


class BatchTryOnResponse(ApiModel):
    results: list[BatchItem]
    total_processing_time: float = Field(description="Milliseconds for the whole request.")
    cache_hits: dict[str, Source]
    stale_seconds: float | None = Field(
        None,
        description="Set when the store did not answer and the registrations were read from the "
        "server's caches: how old they may be (at most VTON_STALE_IF_ERROR_S seconds).",
    )
