"""L2: encoded artifacts on local disk, least recently used first out, bounded in bytes.

One file per key, at `{folder}/{key}~{version}` (keys are store keys: safe relative paths), so a
whole user can be invalidated by prefix and the index is rebuilt from the folder at start-up.
Recency survives restarts through the files' modification times. One process per folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

from vton.store.base import is_key
from vton.store.local import prune_empty_dirs, write_atomic

_VERSION = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SEP = "~"


class DiskLRU:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.folder = Path(folder).resolve()
        self.max_bytes = max_bytes
        self._index: OrderedDict[str, tuple[str, int]] = OrderedDict()  # key -> (version, size)
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.misses = self.evictions = 0
        self.folder.mkdir(parents=True, exist_ok=True)
        self._scan()

    def _path(self, key: str, version: str) -> Path:
        if not _is_entry(key, version):
            raise ValueError(f"cache entry {key!r} version {version!r}: not a safe key and token")
        return self.folder / f"{key}{_SEP}{version}"

    def _scan(self) -> None:
        found = []
        for path in self.folder.rglob("*"):
            if not path.is_file():
                continue
            key, _, version = path.relative_to(self.folder).as_posix().rpartition(_SEP)
            if not _is_entry(key, version):  # a temporary file left by a crash, or a stray
                path.unlink(missing_ok=True)
                continue
            stat = path.stat()
            found.append((stat.st_mtime_ns, key, version, stat.st_size))
        for _, key, version, size in sorted(found):
            self._index[key] = (version, size)
            self.bytes += size
        with self._lock:
            self._evict()

    def get(self, key: str, version: str) -> bytes | None:
        with self._lock:
            entry = self._index.get(key)
            if entry is None or entry[0] != version:
                self.misses += 1
                return None
            self._index.move_to_end(key)
        path = self._path(key, version)
        try:
            data = path.read_bytes()
            os.utime(path)
        except FileNotFoundError:  # evicted or invalidated meanwhile
            with self._lock:
                self.misses += 1
            return None
        with self._lock:
            self.hits += 1
        return data

    def put(self, key: str, version: str, data: bytes) -> None:
        if len(data) > self.max_bytes:  # not kept; the entry it replaces is stale either way
            self.discard(key)
            return
        path = self._path(key, version)
        write_atomic(path, data)
        with self._lock:
            old = self._index.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
                if old[0] != version:
                    self._path(key, old[0]).unlink(missing_ok=True)
            self._index[key] = (version, len(data))
            self.bytes += len(data)
            self._evict()

    def discard(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def invalidate(self, prefix: str) -> int:
        """Drops every entry whose key starts with `prefix`; returns how many."""
        with self._lock:
            doomed = [key for key in self._index if key.startswith(prefix)]
            for key in doomed:
                self._drop(key)
        if prefix.endswith("/") and is_key(prefix[:-1]):
            prune_empty_dirs(self.folder / prefix)
        return len(doomed)

    def lru_order(self) -> list[str]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._index)

    def _drop(self, key: str) -> None:
        entry = self._index.pop(key, None)
        if entry is not None:
            self.bytes -= entry[1]
            self._path(key, entry[0]).unlink(missing_ok=True)

    def _evict(self) -> None:
        while self.bytes > self.max_bytes:
            key, (version, size) = self._index.popitem(last=False)
            self.bytes -= size
            self.evictions += 1
            with contextlib.suppress(FileNotFoundError):
                self._path(key, version).unlink()


def _is_entry(key: str, version: str) -> bool:
    return is_key(key) and _VERSION.fullmatch(version) is not None
