"""L1 (decoded objects) over L2 (encoded bytes on disk) over a fetch from the store.

The cache does not know what the bytes mean: each lookup brings a `fetch` (bytes from the store)
and a `decode` (bytes -> object and its size in bytes). A decode error is raised to every waiter
and nothing is cached; bytes from L2 that no longer decode are dropped and fetched again. Each
lookup answers with where its value came from; a lookup that waited for another's load answers
with that load's source.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Generic, Literal, NamedTuple, TypeVar

from vton.cache.disk import DiskLRU
from vton.cache.lru import Lru
from vton.cache.singleflight import SingleFlight

T = TypeVar("T")
Decode = Callable[[bytes], tuple[T, int]]

Source = Literal["memory", "disk", "store"]
"""Where a lookup found its value: L1, L2, or a fetch from the store."""
_FASTEST_FIRST: tuple[Source, ...] = ("memory", "disk", "store")


class Found(NamedTuple, Generic[T]):
    value: T
    source: Source


def slowest(sources: Iterable[Source]) -> Source:
    """The slowest of `sources` ("memory" if there are none)."""
    return max(sources, key=_FASTEST_FIRST.index, default="memory")


class TieredCache:
    def __init__(self, l1: Lru[str, object], l2: DiskLRU | None = None) -> None:
        self.l1 = l1
        self.l2 = l2
        self._flight = SingleFlight()
        self._lock = threading.Lock()
        self.loads = 0  # fetches from the store

    @classmethod
    def create(cls, l1_bytes: int, l2_bytes: int, l2_folder: Path) -> TieredCache:
        """L1 of `l1_bytes`; L2 in `l2_folder` of `l2_bytes`, or none if that is 0."""
        return cls(Lru(l1_bytes), DiskLRU(l2_folder, l2_bytes) if l2_bytes else None)

    def get(
        self, key: str, version: str, fetch: Callable[[], bytes], decode: Decode[T]
    ) -> Found[T]:
        """The object for `key` at `version` and its source, loading it at most once however
        many ask at once."""
        value = self.l1.get(key, version)
        if value is not None:
            return Found(value, "memory")  # type: ignore[arg-type]
        return self._flight.do((key, version), lambda: self._load(key, version, fetch, decode))

    def _load(
        self, key: str, version: str, fetch: Callable[[], bytes], decode: Decode[T]
    ) -> Found[T]:
        value = self.l1.peek(key, version)  # a load that finished since our L1 miss
        if value is not None:
            return Found(value, "memory")  # type: ignore[arg-type]
        decoded = None
        if self.l2 is not None and (data := self.l2.get(key, version)) is not None:
            try:
                decoded = decode(data)
            except Exception:  # a damaged cache file: the store has the truth
                self.l2.discard(key)
        if decoded is not None:
            source: Source = "disk"
        else:
            source = "store"
            data = fetch()
            with self._lock:
                self.loads += 1
            decoded = decode(data)
            if self.l2:
                self.l2.put(key, version, data)
        value, nbytes = decoded
        self.l1.put(key, value, version, nbytes)
        return Found(value, source)

    def invalidate(self, prefix: str) -> None:
        """Forgets every key under `prefix` in both levels (versions make this a space matter)."""
        self.l1.invalidate(lambda key: key.startswith(prefix))
        if self.l2:
            self.l2.invalidate(prefix)

    def stats(self) -> dict[str, int]:
        """Counters and sizes for metrics (monotonic counters end in `_total`)."""
        stats = {
            "l1_hits_total": self.l1.hits,
            "l1_misses_total": self.l1.misses,
            "l1_evictions_total": self.l1.evictions,
            "l1_bytes": self.l1.bytes,
            "l1_max_bytes": self.l1.max_bytes,
            "store_loads_total": self.loads,
            "coalesced_total": self._flight.coalesced,
        }
        if self.l2:
            stats |= {
                "l2_hits_total": self.l2.hits,
                "l2_misses_total": self.l2.misses,
                "l2_evictions_total": self.l2.evictions,
                "l2_bytes": self.l2.bytes,
                "l2_max_bytes": self.l2.max_bytes,
            }
        return stats
