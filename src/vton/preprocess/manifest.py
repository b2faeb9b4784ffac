"""Manifests: the small JSON objects that say a person or garment is registered, and at which
version. They are written last at registration and deleted first at deletion, so a reader that
finds one finds every artifact it lists; every artifact carries the same version."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vton.errors import CorruptArtifact
from vton.preprocess.fit import Fit
from vton.store import codecs
from vton.store.ids import Category

VERSION_PATTERN = r"^[a-z0-9]{1,40}$"


def new_version() -> str:
    """Unique and increasing with time: nanoseconds since the epoch and 32 random bits, in hex."""
    return f"{time.time_ns():x}{secrets.token_hex(4)}"


def _now() -> datetime:
    return datetime.now(UTC)


class _Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    version: str = Field(pattern=VERSION_PATTERN)
    created_at: datetime = Field(default_factory=_now)

    def encode(self) -> bytes:
        return codecs.encode_json(self.model_dump(mode="json"))

    @classmethod
    def decode(cls, key: str, data: bytes) -> Self:
        try:
            return cls.model_validate(codecs.decode_json(key, data))
        except ValidationError as e:
            raise CorruptArtifact(
                f"{key}: not a valid {cls.__name__} (from before versions? run "
                f"`vton migrate-store`): {e}"
            ) from e


class Detection(BaseModel):
    """What person preprocessing found when it computed a registration's masks or pose."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    people: int = Field(ge=1)
    """People OpenPose found in the photo; the largest one was used."""
    computed: tuple[str, ...]
    """What was computed from the photo ("masks", "pose"); the rest was uploaded."""


class PersonManifest(_Manifest):
    """`users/{user_id}/vton-cache/person.json`. `fit` is None for migrated persons; `detection`
    is None when the masks and the pose were all uploaded."""

    categories: tuple[Category, ...] = Field(min_length=1)
    fit: Fit | None = None
    detection: Detection | None = None


class GarmentManifest(_Manifest):
    """`users/{user_id}/vton-cache/garments/{clothing_id}.json`."""

    clothing_id: str
    category: Category
    description: str
    fit: Fit | None = None
