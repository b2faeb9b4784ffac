"""The store interface: bytes under keys. Backends: a local folder and S3."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

from vton.errors import InvalidInput, NotRegistered

# Key segments as the key layout makes them: ASCII, no empty, `.` or `..` segment, no leading dot
# (temporary files start with one, so they never look like keys).
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class MissingObject(NotRegistered):
    """No object under `key`; the artifact layer turns it into a message about what is missing."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object at {key}")
        self.key = key


def is_key(key: str) -> bool:
    """A relative path of safe segments (what the key functions build)."""
    return bool(key) and all(_SEGMENT.fullmatch(s) for s in key.split("/"))


def check_key(key: str) -> str:
    """Defence in depth: the key functions build safe keys; backends refuse anything else."""
    if not is_key(key):
        raise InvalidInput(f"store key {key!r} is not a relative path of safe segments")
    return key


def check_prefix(prefix: str) -> str:
    """A key prefix: a key, a key with a trailing `/`, or empty (everything)."""
    body = prefix.removesuffix("/")
    if body:
        check_key(body)
    return prefix


class Store(ABC):
    """Bytes under keys. `put` is atomic: a reader sees the old object or the new one, whole.

    Every method raises StoreUnavailable when the backend cannot be reached; `get` raises
    MissingObject when the key has no object.
    """

    url: str

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Removes the object; no error if there is none."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Keys that start with `prefix`, in lexicographic order."""

    def exists(self, key: str) -> bool:
        try:
            self.get(key)
        except MissingObject:
            return False
        return True

    def delete_prefix(self, prefix: str) -> int:
        """Removes every object under `prefix`; returns how many."""
        keys = list(self.list(prefix))
        for key in keys:
            self.delete(key)
        return len(keys)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def put_all(store: Store, objects: Mapping[str, bytes], workers: int = 8) -> None:
    """Writes several objects concurrently (with S3, latency rather than bandwidth is the cost)."""
    with ThreadPoolExecutor(max(1, min(workers, len(objects)))) as pool:
        for future in [pool.submit(store.put, key, data) for key, data in objects.items()]:
            future.result()
