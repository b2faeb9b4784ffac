"""The identical-request result cache: its key, and the finished PNGs kept in the store
(results/{user_id}/{digest}.png) behind a byte-bounded memory LRU (VTON_RESULT_CACHE_BYTES).

Values are the finished image (the engine's, after paste-back and framing) as PNG bytes. Every
call may do store I/O: call it from a thread, not the event loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass

from vton.cache.lru import Lru
from vton.engine.types import DiffusionOptions
from vton.errors import NotRegistered, StoreUnavailable
from vton.store import Store, keys
from vton.store.ids import GarmentKey, PersonKey

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResultKey:
    """Everything that decides a try-on's image; equal keys give equal images."""

    person: PersonKey
    garment: GarmentKey
    model: str
    """The model's identity (checkpoint path or hash, and dtype if it changes the pixels)."""
    seed: int
    options: DiffusionOptions
    """Steps, noise schedule, guidance, and the working size."""
    finish: str
    """How the image is finished before it is cached (Finish.key), e.g.
    "paste_back=1;framing=768x1024"."""

    def digest(self) -> str:
        """A stable hex name for the key, the same across processes and releases (the field
        names and spellings are those results were first stored under: keep them)."""
        person, garment = self.person, self.garment
        fields = {
            "user": person.user_id,
            "person": f"{person.version}/{person.category.value}",
            "garment": f"{garment.clothing_id}@{garment.version}",
            "model": self.model,
            "seed": self.seed,
            "finish": self.finish,
            **asdict(self.options),
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def store_key(self) -> str:
        return keys.result(self.person.user_id, self.digest())


class ResultCache:
    """PNGs by ResultKey, in memory and in the store. A miss, or a store that fails, answers
    None (logged); a failed put costs only the reuse (logged). Thread-safe."""

    def __init__(self, store: Store, memory_bytes: int) -> None:
        self.store = store
        self.memory: Lru[ResultKey, bytes] = Lru(memory_bytes, size=len)

    def get(self, key: ResultKey) -> bytes | None:
        png = self.memory.get(key)
        if png is not None:
            return png
        try:
            png = self.store.get(key.store_key())
        except NotRegistered:
            return None
        except Exception as error:
            _log_failure("get", key, error)
            return None
        self.memory.put(key, png)
        return png

    def put(self, key: ResultKey, png: bytes) -> None:
        self.memory.put(key, png)
        try:
            self.store.put(key.store_key(), png)
        except Exception as error:
            _log_failure("put", key, error)

    def forget(self, user_id: str, clothing_id: str | None = None) -> int:
        """Drops the user's results (of one garment, if given) from memory; returns how many.
        The store's are deleted with the person; a deleted garment's stay there unreachable (their
        names hash its version, which no registration has again) until then."""
        return self.memory.invalidate(
            lambda key: (
                key.person.user_id == user_id and clothing_id in (None, key.garment.clothing_id)
            )
        )


def _log_failure(action: str, key: ResultKey, error: Exception) -> None:
    """A warning; with the traceback unless the store is down (one line per request then)."""
    down = isinstance(error, StoreUnavailable)
    log.warning(
        "result cache %s failed for %s: %s", action, key.store_key(), error, exc_info=not down
    )
