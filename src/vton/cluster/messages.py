"""The JSON a try-on job carries through the queue, both ways.

    producer -> worker   TryOnJob       the BullMQ job's data
    worker -> anyone     TryOnProgress  the job's progress (and each `progress` event)
    worker -> anyone     TryOnResult    the job's return value (and the `completed` event)
    worker -> anyone     JobFailure     the job's failedReason, as the text "code: message"

JSON only, camelCase on the wire (a NestJS producer writes the same fields), and every message
carries `v` (1 today). No image bytes travel: ids and artifact versions go in, store keys of the
result PNGs come out. A message that does not validate raises PayloadError, whose `code` the
worker turns into a failed job ("unsupported_version" or "bad_payload") instead of crashing.

Compatibility: unknown fields are refused (a producer's typo fails loudly). A change of fields
is a new `v`; workers accept the versions in ACCEPTED_VERSIONS, so during a rolling deploy new
workers go out first.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from vton.errors import InvalidInput
from vton.store.ids import Category, check_id

PROTOCOL_VERSION = 1
ACCEPTED_VERSIONS = frozenset({1})
MAX_GARMENTS = 256
"""A hard bound on one job's garments; the API enforces its own, smaller, configured limit."""

SchedulerName = Literal["ddpm", "ddim", "euler", "dpmpp", "unipc"]
"""The engine's scheduler names (vton.engine.types.SchedulerName, which imports torch; a test
keeps the two equal)."""

_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _check_code(value: str) -> str:
    if not _CODE.fullmatch(value):
        raise ValueError(f"{value!r} is not an error code (lowercase letters, digits, '_')")
    return value


UserId = Annotated[str, AfterValidator(lambda v: check_id("userId", v))]
ClothingId = Annotated[str, AfterValidator(lambda v: check_id("clothingId", v))]
VERSION_PATTERN = r"^[a-z0-9]{1,40}$"
"""An artifact version (vton.preprocess.manifest.VERSION_PATTERN, whose package imports torch;
a test keeps the two equal)."""
Version = Annotated[str, Field(pattern=VERSION_PATTERN)]
ErrorCode = Annotated[str, AfterValidator(_check_code)]
Millis = Annotated[float, Field(ge=0.0)]


class PayloadError(InvalidInput):
    """A message that cannot be used: `code` is "unsupported_version" or "bad_payload"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Wire(BaseModel):
    """camelCase JSON, unknown fields refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )


class Message(_Wire):
    """A top-level message: versioned, read with `parse`, written with `dump`."""

    v: int = PROTOCOL_VERSION

    def dump(self) -> dict[str, Any]:
        """The message as JSON-ready data (what goes into Redis)."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def parse(cls, data: object) -> Self:
        """Validates `data` (decoded JSON); raises PayloadError saying what is wrong."""
        name = cls.__name__
        if not isinstance(data, dict):
            raise PayloadError("bad_payload", f"{name}: expected a JSON object, got {data!r:.80}")
        version = data.get("v")
        if version not in ACCEPTED_VERSIONS:
            raise PayloadError(
                "unsupported_version",
                f"{name}: message version v={version!r} is not one this worker reads "
                f"({sorted(ACCEPTED_VERSIONS)})",
            )
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                for err in e.errors(include_url=False)
            )
            raise PayloadError("bad_payload", f"{name}: {problems}") from None


class PersonRef(_Wire):
    """The user's registered person, at the version the request saw."""

    version: Version


class GarmentRef(_Wire):
    clothing_id: ClothingId
    version: Version


class RunOptions(_Wire):
    """How to run the try-on and finish its images (the API's TryOnOptionsIn, same bounds)."""

    steps: int = Field(20, ge=1, le=100)
    scheduler: SchedulerName = "ddpm"
    guidance_scale: float = Field(2.0, ge=1.0, le=20.0)
    seed: int = Field(42, ge=0, le=2**32 - 1)
    paste_back: bool = True
    framing: Literal["original", "768x1024"] = "768x1024"


class TryOnJob(Message):
    """One request's garments on one user's person. The BullMQ job id is the vton job id."""

    kind: Literal["single", "batch"]
    user_id: UserId
    person: PersonRef
    garments: list[GarmentRef] = Field(min_length=1, max_length=MAX_GARMENTS)
    category: Category | None = None
    """Try every garment on in this category instead of its own."""
    options: RunOptions = RunOptions()
    requested_at: AwareDatetime
    deadline: AwareDatetime | None = None
    """After this the job is failed with "deadline_exceeded" instead of run."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind == "single" and len(self.garments) != 1:
            raise ValueError(f"a single try-on has one garment, got {len(self.garments)}")
        if self.deadline is not None and self.deadline <= self.requested_at:
            raise ValueError("deadline must be after requestedAt")
        return self

    def expired(self, now: datetime) -> bool:
        return self.deadline is not None and now >= self.deadline


class TryOnProgress(Message):
    """Denoising steps done, summed over the items, and items finished so far."""

    step: int = Field(ge=0)
    total_steps: int = Field(ge=1)
    items_finished: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.step > self.total_steps:
            raise ValueError(f"step {self.step} > totalSteps {self.total_steps}")
        return self


class Timings(_Wire):
    """Milliseconds per phase, as the API reports them."""

    artifacts: Millis = 0.0
    queue: Millis = 0.0
    encode: Millis = 0.0
    diffusion: Millis = 0.0
    decode: Millis = 0.0
    total: Millis = 0.0


class ItemResult(_Wire):
    """One garment's outcome. A succeeded item names its PNG in the store; a failed or
    cancelled one its error."""

    index: int = Field(ge=0)
    """The garment's position in TryOnJob.garments."""
    clothing_id: ClothingId
    state: Literal["succeeded", "failed", "cancelled"]
    result_key: str | None = Field(None, min_length=1, max_length=512)
    timings: Timings = Timings()
    batch_size: int | None = Field(None, ge=1)
    """Samples in the engine batch that made the image; None when it came from the cache."""
    cached: bool = False
    error_code: ErrorCode | None = None
    error_message: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.state == "succeeded":
            if self.result_key is None or self.error_code is not None:
                raise ValueError("a succeeded item has a resultKey and no errorCode")
        elif self.error_code is None or self.result_key is not None:
            raise ValueError(f"a {self.state} item has an errorCode and no resultKey")
        return self


class TryOnResult(Message):
    """The job's outcome, one entry per garment in the job's order."""

    items: list[ItemResult] = Field(min_length=1, max_length=MAX_GARMENTS)
    worker: str = Field("", max_length=200)
    """Which worker ran it (host and process), for logs."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if [item.index for item in self.items] != list(range(len(self.items))):
            raise ValueError("items must be indexed 0..n-1 in order")
        return self


class JobFailure(_Wire):
    """Why a whole job failed: BullMQ keeps it as the text "code: message" (failedReason)."""

    code: ErrorCode
    message: str

    def reason(self) -> str:
        return f"{self.code}: {self.message}"

    @classmethod
    def from_reason(cls, reason: str) -> JobFailure:
        """Reads a failedReason back; one not written by `reason` keeps its text as the
        message under the code "failed"."""
        code, sep, message = reason.partition(": ")
        if sep and _CODE.fullmatch(code):
            return cls(code=code, message=message)
        return cls(code="failed", message=reason)
