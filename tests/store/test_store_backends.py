"""Every store behaviour, on both backends (the `artifact_store` fixture runs each test twice)."""

from __future__ import annotations

import threading

import pytest

from vton.errors import InvalidInput, NotRegistered
from vton.store import MissingObject, Store


def test_put_get_overwrite(artifact_store: Store) -> None:
    artifact_store.put("users/u1/a.png", b"one")
    assert artifact_store.get("users/u1/a.png") == b"one"
    artifact_store.put("users/u1/a.png", b"two")
    assert artifact_store.get("users/u1/a.png") == b"two"
    assert artifact_store.exists("users/u1/a.png")


def test_missing_key_is_not_registered_naming_the_key(artifact_store: Store) -> None:
    with pytest.raises(MissingObject, match=r"users/u1/none\.png") as info:
        artifact_store.get("users/u1/none.png")
    assert isinstance(info.value, NotRegistered)
    assert not artifact_store.exists("users/u1/none.png")


def test_delete_is_idempotent(artifact_store: Store) -> None:
    artifact_store.put("users/u1/a", b"x")
    artifact_store.delete("users/u1/a")
    artifact_store.delete("users/u1/a")
    assert not artifact_store.exists("users/u1/a")


def test_list_is_sorted_and_filtered_by_prefix(artifact_store: Store) -> None:
    for key in ["users/u2/x", "users/u1/b/c", "users/u1/a", "users/u10/z", "results/u1/h.png"]:
        artifact_store.put(key, b".")
    assert list(artifact_store.list("users/u1/")) == ["users/u1/a", "users/u1/b/c"]
    assert list(artifact_store.list("users/u1")) == ["users/u1/a", "users/u1/b/c", "users/u10/z"]
    assert len(list(artifact_store.list(""))) == 5


def test_delete_prefix(artifact_store: Store) -> None:
    for key in ["users/u1/upper/a.png", "users/u1/upper/b.png", "users/u1/lower/a.png"]:
        artifact_store.put(key, b".")
    assert artifact_store.delete_prefix("users/u1/upper/") == 2
    assert list(artifact_store.list("users/")) == ["users/u1/lower/a.png"]
    assert artifact_store.delete_prefix("users/u1/upper/") == 0


@pytest.mark.parametrize(
    "key", ["", "/abs", "users/../etc", "users//x", "users/./x", "users/é", "a/.hidden", "a b"]
)
def test_unsafe_keys_are_refused(artifact_store: Store, key: str) -> None:
    with pytest.raises(InvalidInput):
        artifact_store.get(key)
    with pytest.raises(InvalidInput):
        artifact_store.put(key, b"x")


def test_readers_never_see_a_partial_object(artifact_store: Store) -> None:
    """Two large versions written in turn; every read returns one of them whole."""
    versions = [bytes([i]) * 3_000_000 for i in (1, 2)]
    artifact_store.put("users/u1/big", versions[0])
    stop = threading.Event()
    seen: list[bytes] = []

    def read() -> None:
        while not stop.is_set():
            seen.append(artifact_store.get("users/u1/big"))

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(6):
        artifact_store.put("users/u1/big", versions[i % 2])
    stop.set()
    reader.join()
    assert seen and all(data in versions for data in seen)
