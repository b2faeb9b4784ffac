"""The one least-recently-used cache in memory: bounded in bytes, optionally versioned,
thread-safe. Behind the artifact memory cache (L1), the result cache's memory and the device
caches of the engine (conditioning, garment features).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Entry(Generic[V]):
    value: V
    version: str | None
    nbytes: int


class Lru(Generic[K, V]):
    """One entry per key; values are never None (None is the miss).

    Each entry's size is `size(value)` unless `put` is given `nbytes` (the caller's estimate:
    decoded pixels, tensor bytes). An entry larger than the whole bound is not kept. With a
    `version`, a lookup for another version of the key is a miss. Cached values are shared:
    never mutate them.
    """

    def __init__(self, max_bytes: int, size: Callable[[V], int] | None = None) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._size = size
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.misses = self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K, version: str | None = None) -> V | None:
        """The value, or None if there is none for this key (at this version); counted."""
        with self._lock:
            value = self._lookup(key, version)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
            return value

    def peek(self, key: K, version: str | None = None) -> V | None:
        """Like `get`, without counting a hit or a miss."""
        with self._lock:
            return self._lookup(key, version)

    def put(self, key: K, value: V, version: str | None = None, nbytes: int | None = None) -> bool:
        """Stores `value` (replacing the key's entry); False when it is larger than the bound."""
        if value is None:
            raise ValueError("an Lru cannot hold None (it is the miss)")
        if nbytes is None:
            if self._size is None:
                raise ValueError("put needs nbytes: this Lru has no size function")
            nbytes = self._size(value)
        with self._lock:
            self._remove(key)
            if nbytes > self.max_bytes:
                return False
            self._entries[key] = _Entry(value, version, nbytes)
            self.bytes += nbytes
            self._evict_until(0)
            return True

    def make_room(self, nbytes: int) -> None:
        """Evicts least recently used entries until `nbytes` more would fit."""
        with self._lock:
            self._evict_until(nbytes)

    def discard(self, key: K) -> None:
        with self._lock:
            self._remove(key)

    def invalidate(self, matches: Callable[[K], bool]) -> int:
        """Drops every entry whose key `matches`; returns how many."""
        with self._lock:
            doomed = [key for key in self._entries if matches(key)]
            for key in doomed:
                self._remove(key)
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def lru_order(self) -> list[K]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._entries)

    def stats(self) -> dict[str, int]:
        """Counters and sizes for metrics (monotonic counters end in `_total`)."""
        return {
            "hits_total": self.hits,
            "misses_total": self.misses,
            "evictions_total": self.evictions,
            "entries": len(self._entries),
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
        }

    def _lookup(self, key: K, version: str | None) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry.version != version:
            return None
        self._entries.move_to_end(key)
        return entry.value

    def _evict_until(self, extra: int) -> None:
        while self._entries and self.bytes + extra > self.max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self.bytes -= oldest.nbytes
            self.evictions += 1

    def _remove(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.nbytes
