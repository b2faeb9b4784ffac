"""What only the S3 backend has to show: the bucket layout and an unreachable server."""

from __future__ import annotations

import boto3
import pytest

from tests.s3_server import S3TestServer, make_s3_store
from vton.errors import StoreUnavailable
from vton.store import S3Store


def test_keys_live_under_the_prefix(s3_store: S3Store, s3_server: S3TestServer) -> None:
    s3_store.put("users/u1/vton-cache/person.json", b"{}")
    client = boto3.client("s3", endpoint_url=s3_server.endpoint_url)
    listed = client.list_objects_v2(Bucket=s3_store.bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["prefix/users/u1/vton-cache/person.json"]


def test_unreachable_server_is_store_unavailable_and_recovers(s3_server: S3TestServer) -> None:
    server = S3TestServer()
    server.start()
    store = make_s3_store(server, max_attempts=1, connect_timeout_s=1.0)
    store.put("users/u1/a", b"x")
    server.stop()
    try:
        for call in (lambda: store.get("users/u1/a"), lambda: store.put("users/u1/b", b"y")):
            with pytest.raises(StoreUnavailable, match=store.bucket):
                call()
    finally:
        server.start()
    assert store.get("users/u1/a") == b"x"
    server.stop()
