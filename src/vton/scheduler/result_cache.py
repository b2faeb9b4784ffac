"""The identical-request result cache: its key, its interface, and an in-memory implementation.

The API plugs in a store-backed cache (results/{user_id}/{digest}.png); tests and the dev server
use InMemoryResultCache. Values are the finished image (the pipeline's, after the item's finisher)
as PNG bytes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Protocol

from vton.engine.types import DiffusionOptions
from vton.errors import InvalidInput


@dataclass(frozen=True)
class ResultKey:
    """Everything that decides a try-on's image; equal keys give equal images."""

    user_id: str
    person_version: str
    garment_version: str
    model: str
    """The model's identity (checkpoint path or hash, and dtype if it changes the pixels)."""
    seed: int
    options: DiffusionOptions
    """Steps, scheduler, guidance, and the working size."""
    finish: str = ""
    """How the image is finished before it is cached (the submit's finisher), as a short stable
    description, e.g. "paste_back=1;framing=768x1024"; "" for none."""

    def digest(self) -> str:
        """A stable hex name for the key, the same across processes."""
        fields = {
            "user": self.user_id,
            "person": self.person_version,
            "garment": self.garment_version,
            "model": self.model,
            "seed": self.seed,
            "finish": self.finish,
            **asdict(self.options),
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class ResultCache(Protocol):
    """PNG bytes by ResultKey.digest(); may do I/O: call it from a thread, not the event loop."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, png: bytes) -> None: ...


class InMemoryResultCache:
    """A least-recently-used ResultCache bounded in bytes; thread-safe."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        if max_bytes < 1:
            raise InvalidInput(f"max_bytes must be >= 1, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            png = self._entries.get(key)
            if png is not None:
                self._entries.move_to_end(key)
            return png

    def put(self, key: str, png: bytes) -> None:
        if len(png) > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            self._bytes -= len(old) if old is not None else 0
            self._entries[key] = png
            self._bytes += len(png)
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted)
