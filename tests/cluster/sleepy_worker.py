"""A worker process for the crash tests: a TryOnConsumer whose handler sleeps `--step-s` per
denoising step and reports progress. It writes `ready.<pid>` once consuming and
`<job id>.<pid>.started` when it takes a job into `--markers`; a job with POISON_SEED kills
the process (SIGKILL) after its first step. SIGTERM stops it gracefully.

    python sleepy_worker.py --url redis://... --queue NAME --markers DIR [--lock-ms 1000 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from tests.cluster.jobs import POISON_SEED, result_for
from vton.cluster.messages import TryOnProgress, TryOnResult
from vton.cluster.queue import JobContext, QueueSettings, TryOnConsumer


async def main(args: argparse.Namespace) -> None:
    settings = QueueSettings(
        url=args.url,
        name=args.queue,
        lock_duration_ms=args.lock_ms,
        stalled_interval_ms=args.stalled_ms,
        cancel_poll_s=0.05,
    )
    markers = Path(args.markers)
    consumer: TryOnConsumer

    async def handle(context: JobContext) -> TryOnResult:
        (markers / f"{context.job_id}.{os.getpid()}.started").touch()
        steps = context.payload.options.steps
        for step in range(1, steps + 1):
            await asyncio.sleep(args.step_s)
            if context.payload.options.seed == POISON_SEED:
                os.kill(os.getpid(), signal.SIGKILL)
            context.raise_if_cancelled()
            await context.report(TryOnProgress(step=step, total_steps=steps))
        return result_for(context.job_id, context.payload, consumer.name)

    consumer = TryOnConsumer(settings, handle, concurrency=args.concurrency)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await consumer.start()
    (markers / f"ready.{os.getpid()}").touch()
    await stop.wait()
    await consumer.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--markers", required=True)
    parser.add_argument("--lock-ms", type=int, default=1000)
    parser.add_argument("--stalled-ms", type=int, default=500)
    parser.add_argument("--step-s", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=1)
    asyncio.run(main(parser.parse_args()))
