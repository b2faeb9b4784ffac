"""Which worker takes a user's job: the user's home device, unless it is much busier.

Home: sha256 of the user id, modulo the number of devices, so a user's jobs land where that user's
person and garment conditioning is already cached, the same across processes and restarts (Python's
hash() is salted per process).

Much busier: the home device's load (items queued + running) exceeds the least loaded device's by
more than OVERFLOW_BATCHES full batches; waiting that long costs more than a cold cache. Then, or
when the home queue has no room, the job goes to the least loaded device with room. (The scheduler
counts a device as having room when its queue has room and it is expected to finish the job
before its deadline.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

OVERFLOW_BATCHES = 2


def home_device(user_id: str, n_devices: int) -> int:
    """The index of the user's home device among n_devices."""
    digest = hashlib.sha256(user_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_devices


def choose_device(
    user_id: str, loads: Sequence[int], room: Sequence[bool], max_batch: int
) -> int | None:
    """The index of the device that takes the job, or None when no device has room for it."""
    candidates = [i for i, has_room in enumerate(room) if has_room]
    if not candidates:
        return None
    home = home_device(user_id, len(loads))
    least = min(candidates, key=lambda i: loads[i])
    if room[home] and loads[home] <= loads[least] + OVERFLOW_BATCHES * max_batch:
        return home
    return least
