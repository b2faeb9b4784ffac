"""A store in an S3 bucket (AWS or any S3-compatible server), through boto3.

Credentials and region come from the standard AWS variables and files. A PUT is atomic in S3.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vton.errors import StoreUnavailable
from vton.store.base import MissingObject, Store, check_key, check_prefix

_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
_DELETE_BATCH = 1000  # DeleteObjects' limit

# A client is thread-safe; a Session is not, and making one reloads the service models (~0.2 s),
# so clients come from one session, one at a time.
_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


def _new_client(endpoint_url: str | None, config: Config) -> Any:
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client("s3", endpoint_url=endpoint_url, config=config)


class S3Store(Store):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 10.0,
        max_attempts: int = 3,
        max_connections: int = 16,
    ) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        config = Config(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max_connections,
        )
        self._client = _new_client(endpoint_url, config)

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_CODES:
                raise MissingObject(key) from None
            raise StoreUnavailable(f"{self.url}: {action} {key}: {code or e}") from e
        except BotoCoreError as e:  # connection refused, timeouts, broken streams
            raise StoreUnavailable(f"{self.url}: {action} {key}: {e}") from e

    def get(self, key: str) -> bytes:
        name = self.prefix + check_key(key)
        with self._errors("reading", key):
            return self._client.get_object(Bucket=self.bucket, Key=name)["Body"].read()

    def exists(self, key: str) -> bool:
        name = self.prefix + check_key(key)
        try:
            with self._errors("checking", key):
                self._client.head_object(Bucket=self.bucket, Key=name)
        except MissingObject:
            return False
        return True

    def put(self, key: str, data: bytes) -> None:
        name = self.prefix + check_key(key)
        with self._errors("writing", key):
            self._client.put_object(Bucket=self.bucket, Key=name, Body=data)

    def delete(self, key: str) -> None:
        name = self.prefix + check_key(key)
        with self._errors("deleting", key):
            self._client.delete_object(Bucket=self.bucket, Key=name)

    def list(self, prefix: str) -> Iterator[str]:
        full = self.prefix + check_prefix(prefix)
        keys: list[str] = []
        with self._errors("listing", prefix):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        return iter(sorted(keys))

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": self.prefix + k} for k in keys[start : start + _DELETE_BATCH]]
            with self._errors("deleting under", prefix):
                self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
        return len(keys)
