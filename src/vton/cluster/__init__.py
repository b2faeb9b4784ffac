"""Many machines: try-on jobs on a BullMQ queue (Redis) between stateless API processes, GPU
workers and any other BullMQ producer (e.g. a NestJS service).

    messages.py  the JSON that travels in a job: payload, progress, result (pydantic, versioned)
    queue.py     the one adapter around the Python `bullmq` package (the `cluster` extra)
"""
