"""Bytes under keys (a local folder or S3), the key layout, and the artifact formats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vton.config import Settings
from vton.errors import InvalidInput
from vton.store.base import MissingObject, Store
from vton.store.ids import Category
from vton.store.local import LocalStore

__all__ = ["Category", "LocalStore", "MissingObject", "S3Store", "Store", "open_store"]


def _s3_store_class() -> Any:
    """vton.store.s3.S3Store, imported on first use: boto3 is the `s3` extra, the local store
    needs none of it."""
    try:
        from vton.store.s3 import S3Store
    except ImportError as e:
        raise InvalidInput(
            f"VTON_STORE: an s3:// store needs {e.name or 'boto3'}: pip install 'vton[s3]'"
        ) from e
    return S3Store


def __getattr__(name: str) -> Any:
    if name == "S3Store":
        return _s3_store_class()
    raise AttributeError(f"module {__name__} has no attribute {name}")


def open_store(settings: Settings) -> Store:
    """The store `settings.store` names: `file://PATH` or `s3://BUCKET/PREFIX`."""
    scheme, _, rest = settings.store.partition("://")
    if scheme == "file":
        return LocalStore(Path(rest))
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise InvalidInput(f"VTON_STORE: no bucket in {settings.store!r}")
        return _s3_store_class()(
            bucket,
            prefix,
            endpoint_url=settings.s3_endpoint_url,
            connect_timeout_s=settings.s3_connect_timeout_s,
            read_timeout_s=settings.s3_read_timeout_s,
            max_attempts=settings.s3_max_attempts,
            max_connections=settings.load_workers,
        )
    raise InvalidInput(f"VTON_STORE: unknown scheme in {settings.store!r} (file:// or s3://)")
