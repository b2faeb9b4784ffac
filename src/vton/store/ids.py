"""Validation of the ids and names that end up in store keys, the garment categories, and the
one key type per person and per garment the service uses (engine caches, result cache)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from vton.errors import InvalidInput

MAX_ID_LENGTH = 64
# A UUID (any case, with or without dashes) or a short slug: ASCII letters, digits, `_`, `-`,
# starting with a letter or digit. No `/`, no `.`, so an id can never climb out of its folder.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
"""What check_id accepts (up to MAX_ID_LENGTH characters), as the OpenAPI schema states it."""
_ID = re.compile(ID_PATTERN)
_RESULT_HASH = re.compile(r"[0-9a-f]{16,128}")


def check_id(what: str, value: object) -> str:
    """Returns `value` if it is a safe id, else raises InvalidInput naming `what`."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what}: must be a non-empty string, got {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"{what}: longer than {MAX_ID_LENGTH} characters ({len(value)})")
    if not value.isascii() or not _ID.fullmatch(value):
        raise InvalidInput(
            f"{what}: {value!r} is not a UUID or slug (ASCII letters, digits, '_' and '-')"
        )
    return value


def check_result_hash(value: object) -> str:
    if not isinstance(value, str) or not _RESULT_HASH.fullmatch(value):
        raise InvalidInput(f"result_hash: {value!r} is not a lowercase hex digest")
    return value


class Category(StrEnum):
    """A garment category as the API names it; `folder` is its name in the key layout."""

    UPPER_BODY = "upper_body"
    LOWER_BODY = "lower_body"
    DRESSES = "dresses"

    @property
    def folder(self) -> str:
        return _FOLDERS[self]

    @classmethod
    def parse(cls, value: object) -> Category:
        """Accepts the API name or the folder name; raises InvalidInput otherwise."""
        for category in cls:
            if value in (category.value, category.folder):
                return category
        names = ", ".join(c.value for c in cls)
        raise InvalidInput(f"category: {value!r} is not one of {names}")


_FOLDERS = {Category.UPPER_BODY: "upper", Category.LOWER_BODY: "lower", Category.DRESSES: "dresses"}


@dataclass(frozen=True)
class PersonKey:
    """A user's person artifacts of one category at one version: equal keys, equal inputs."""

    user_id: str
    category: Category
    version: str


@dataclass(frozen=True)
class GarmentKey:
    """A user's garment artifacts at one version: equal keys, equal inputs."""

    user_id: str
    clothing_id: str
    version: str
