"""What cluster mode keeps in Redis about a job beside the BullMQ job itself (whose payload is
the workers' protocol, vton.cluster.messages): any API process must read them.

    {prefix}:{queue}.spec:{job id}        the job's JobOutput, webhook URL and base URL (JSON)
    {prefix}:{queue}.webhook:{job id}     its webhook's Delivery (JSON), written by the process
                                          that delivers it
    {prefix}:{queue}.jobs:{user id}       the user's job ids by submission time (sorted set,
                                          the newest MAX_LISTED kept)
    {prefix}:{queue}.idem:{user id}:{h}   an Idempotency-Key's body digest and job id (h: the
                                          key's SHA-256), set once (SET NX)

Like the queue's cancel flags they sit outside BullMQ's keyspace, and every one expires.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from vton.api.job_options import JobOutput
from vton.api.webhooks import Delivery
from vton.cluster.queue import QueueSettings
from vton.errors import StoreUnavailable

T = TypeVar("T")
MAX_LISTED = 100


@dataclass(frozen=True)
class StoredSpec:
    output: JobOutput
    webhook_url: str | None
    base_url: str


class JobRecords:
    def __init__(self, settings: QueueSettings) -> None:
        self.settings = settings
        self._redis = aioredis.Redis.from_url(
            settings.url,
            decode_responses=True,
            socket_connect_timeout=min(2.0, settings.call_timeout_s),
        )

    async def close(self) -> None:
        await self._redis.aclose()

    def _key(self, kind: str, *parts: str) -> str:
        return f"{self.settings.prefix}:{self.settings.name}.{kind}:{':'.join(parts)}"

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.settings.call_timeout_s):
                return await call
        except (RedisError, OSError, TimeoutError) as e:
            raise StoreUnavailable(f"Redis at {self.settings.url} unavailable: {e}") from e

    # -- a job's spec, its webhook, the user's list ----------------------------------------

    async def add(
        self, user_id: str, job_id: str, created_ms: int, spec: StoredSpec, ttl_s: int
    ) -> None:
        """Records a new job: its spec, its webhook's first state, its place in the list."""
        listed = self._key("jobs", user_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._key("spec", job_id), json.dumps(asdict(spec)), ex=ttl_s)
        if spec.webhook_url is not None:
            delivery = json.dumps(asdict(Delivery(spec.webhook_url)))
            pipe.set(self._key("webhook", job_id), delivery, ex=ttl_s)
        pipe.zadd(listed, {job_id: created_ms})
        pipe.zremrangebyrank(listed, 0, -MAX_LISTED - 1)
        pipe.expire(listed, ttl_s)
        await self._call(pipe.execute())

    async def spec(self, job_id: str) -> StoredSpec:
        """The job's spec; the defaults for a job submitted otherwise (a Node producer)."""
        raw = await self._call(self._redis.get(self._key("spec", job_id)))
        if raw is None:
            return StoredSpec(JobOutput(), None, "")
        data: dict[str, Any] = json.loads(raw)
        return StoredSpec(JobOutput(**data["output"]), data["webhook_url"], data["base_url"])

    async def delivery(self, job_id: str) -> Delivery | None:
        raw = await self._call(self._redis.get(self._key("webhook", job_id)))
        return None if raw is None else Delivery(**json.loads(raw))

    async def save_delivery(self, job_id: str, delivery: Delivery, ttl_s: int) -> None:
        value = json.dumps(asdict(delivery))
        await self._call(self._redis.set(self._key("webhook", job_id), value, ex=ttl_s))

    async def recent(self, user_id: str, limit: int) -> list[str]:
        """The user's job ids, newest first (some may have expired from the queue)."""
        found = await self._call(self._redis.zrevrange(self._key("jobs", user_id), 0, limit - 1))
        return [str(job_id) for job_id in found]  # decode_responses: str members

    # -- idempotency keys ---------------------------------------------------------------------

    def _idem_key(self, user_id: str, key: str) -> str:
        return self._key("idem", user_id, hashlib.sha256(key.encode()).hexdigest())

    async def claim(
        self, user_id: str, key: str, digest: str, job_id: str, ttl_s: int
    ) -> tuple[str, str] | None:
        """Claims the key for `job_id`; None if claimed, else the (digest, job id) it holds."""
        name = self._idem_key(user_id, key)
        value = json.dumps({"digest": digest, "jobId": job_id})
        while True:
            if await self._call(self._redis.set(name, value, nx=True, ex=ttl_s)):
                return None
            held = await self._call(self._redis.get(name))
            if held is not None:  # else it expired in between: claim again
                data = json.loads(held)
                return data["digest"], data["jobId"]

    async def release(self, user_id: str, key: str, job_id: str) -> None:
        """Frees a key claimed by a job that was not queued after all (if it still holds it)."""
        name = self._idem_key(user_id, key)
        held = await self._call(self._redis.get(name))
        if held is not None and json.loads(held)["jobId"] == job_id:
            await self._call(self._redis.delete(name))
