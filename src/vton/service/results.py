"""Identical-request results kept in the store (results/{user_id}/{digest}.png), with a small
memory cache in front; the scheduler's ResultCache for the service."""

from __future__ import annotations

from vton.errors import NotRegistered
from vton.scheduler import InMemoryResultCache, ResultKey
from vton.store import Store, keys


def result_cache_key(key: ResultKey) -> str:
    """The scheduler's cache key for a result: `{user_id}/{digest}` (the store needs both)."""
    return f"{key.user_id}/{key.digest()}"


class StoreResultCache:
    """Results by `result_cache_key`; a store miss or failure is a cache miss to the scheduler
    (it logs the failure), a put failure costs only the reuse."""

    def __init__(self, store: Store, memory_bytes: int) -> None:
        self.store = store
        self.memory = InMemoryResultCache(memory_bytes)

    def get(self, key: str) -> bytes | None:
        png = self.memory.get(key)
        if png is not None:
            return png
        try:
            png = self.store.get(self._store_key(key))
        except NotRegistered:
            return None
        self.memory.put(key, png)
        return png

    def put(self, key: str, png: bytes) -> None:
        self.memory.put(key, png)
        self.store.put(self._store_key(key), png)

    @staticmethod
    def _store_key(key: str) -> str:
        user_id, _, digest = key.partition("/")
        return keys.result(user_id, digest)
