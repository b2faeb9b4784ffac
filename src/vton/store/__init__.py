"""Bytes under keys (a local folder or S3), the key layout, and the artifact formats."""

from __future__ import annotations

from pathlib import Path

from vton.config import Settings
from vton.errors import InvalidInput
from vton.store.base import MissingObject, Store
from vton.store.ids import Category
from vton.store.local import LocalStore
from vton.store.s3 import S3Store

__all__ = ["Category", "LocalStore", "MissingObject", "S3Store", "Store", "open_store"]


def open_store(settings: Settings) -> Store:
    """The store `settings.store` names: `file://PATH` or `s3://BUCKET/PREFIX`."""
    scheme, _, rest = settings.store.partition("://")
    if scheme == "file":
        return LocalStore(Path(rest))
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise InvalidInput(f"VTON_STORE: no bucket in {settings.store!r}")
        return S3Store(
            bucket,
            prefix,
            endpoint_url=settings.s3_endpoint_url,
            connect_timeout_s=settings.s3_connect_timeout_s,
            read_timeout_s=settings.s3_read_timeout_s,
            max_attempts=settings.s3_max_attempts,
            max_connections=settings.load_workers,
        )
    raise InvalidInput(f"VTON_STORE: unknown scheme in {settings.store!r} (file:// or s3://)")
