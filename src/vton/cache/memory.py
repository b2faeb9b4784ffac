"""L1: decoded objects in memory, least recently used first out, bounded in bytes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

MISS: Any = object()  # what `get` returns on a miss (cached values may be anything)


@dataclass
class _Entry:
    version: str
    value: Any
    nbytes: int


class MemoryLRU:
    """One entry per key, tagged with a version; a get for another version is a miss.

    The byte size of an object is the caller's estimate (decoded pixels, tensor bytes). An object
    larger than the whole bound is not kept. Cached objects are shared: never mutate them.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.misses = self.evictions = 0

    def get(self, key: str, version: str) -> Any:
        """The object, or MISS if there is none for this key at this version."""
        with self._lock:
            value = self._lookup(key, version)
            if value is MISS:
                self.misses += 1
            else:
                self.hits += 1
            return value

    def peek(self, key: str, version: str) -> Any:
        """Like `get`, without counting a hit or a miss."""
        with self._lock:
            return self._lookup(key, version)

    def put(self, key: str, version: str, value: Any, nbytes: int) -> None:
        with self._lock:
            self._remove(key)
            if nbytes > self.max_bytes:
                return
            self._entries[key] = _Entry(version, value, nbytes)
            self.bytes += nbytes
            while self.bytes > self.max_bytes:
                _, oldest = self._entries.popitem(last=False)
                self.bytes -= oldest.nbytes
                self.evictions += 1

    def invalidate(self, prefix: str) -> int:
        """Drops every entry whose key starts with `prefix`; returns how many."""
        with self._lock:
            doomed = [key for key in self._entries if key.startswith(prefix)]
            for key in doomed:
                self._remove(key)
            return len(doomed)

    def lru_order(self) -> list[str]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._entries)

    def _lookup(self, key: str, version: str) -> Any:
        entry = self._entries.get(key)
        if entry is None or entry.version != version:
            return MISS
        self._entries.move_to_end(key)
        return entry.value

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.nbytes
