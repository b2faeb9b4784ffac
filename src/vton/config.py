"""Every vton setting, read from the environment and `.env` (prefix `VTON_`).

AWS credentials and region are not here: boto3 reads the standard `AWS_*` variables itself.
One flat class: add a field with a default, bounds and a one-line docstring.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_GiB = 1024**3
TINY_MODEL_FRAME_FILE = "vton-tiny-model.json"
"""Written by `vton make-tiny-model` into its checkpoint: the tiny model's working frame."""


class Settings(BaseSettings):
    """vton's settings; each attribute docstring is the field's description."""

    model_config = SettingsConfigDict(
        env_prefix="VTON_",
        env_file=".env",
        extra="ignore",
        use_attribute_docstrings=True,
        hide_input_in_errors=True,  # an error must not print a value: it may be a secret
    )

    store: str = Field("file://./var/store", pattern=r"^(file|s3)://.+")
    """Where artifacts live: `file://PATH` (a local folder) or `s3://BUCKET/PREFIX`."""

    s3_endpoint_url: str | None = Field(None, pattern=r"^https?://.+")
    """Endpoint of an S3-compatible server (MinIO, moto); unset means AWS itself."""

    s3_connect_timeout_s: float = Field(2.0, gt=0, le=60)
    """Seconds to wait for a connection to S3 before it counts as unreachable."""

    s3_read_timeout_s: float = Field(10.0, gt=0, le=300)
    """Seconds to wait for S3 to answer a request."""

    s3_max_attempts: int = Field(3, ge=1, le=10)
    """Attempts per S3 request (the first try included) before StoreUnavailable."""

    store_call_timeout_s: float = Field(2.5, gt=0, le=300)
    """Seconds one store call of the service may take in all (connects, reads and retries):
    past it the call fails with StoreUnavailable (503 + Retry-After)."""

    store_breaker_failures: int = Field(5, ge=1, le=1000)
    """Consecutive failed store calls that open the circuit breaker: while it is open, store
    calls fail at once (503 + Retry-After) and /ready answers 503."""

    store_breaker_open_s: float = Field(10.0, gt=0, le=3600)
    """Seconds the circuit breaker stays open before one trial call tests the store again."""

    stale_if_error_s: float = Field(300.0, ge=0, le=86400)
    """While the store does not answer, a try-on may use person and garment manifests the store
    gave at most this many seconds ago (its artifacts then come from the caches; the response says
    `staleSeconds`); 0: never, every try-on then needs the store."""

    l1_cache_bytes: int = Field(2 * _GiB, ge=0, le=1024 * _GiB)
    """Memory cache (decoded artifacts) bound in bytes; 0 disables it."""

    l2_cache_bytes: int = Field(20 * _GiB, ge=0, le=100 * 1024 * _GiB)
    """Disk cache (encoded artifacts) bound in bytes; 0 disables it."""

    cache_dir: Path = Path("./var/cache")
    """Folder of the disk cache; one process per folder."""

    load_workers: int = Field(16, ge=1, le=256)
    """Threads that fetch artifacts in parallel (also the S3 connection pool size)."""

    model_path: Path = Path("./var/tiny-model")
    """IDM-VTON checkpoint folder (a `yisol/IDM-VTON` snapshot or `vton make-tiny-model` output)."""

    preprocess_path: Path | None = None
    """Person preprocessing weights in IDM-VTON's `ckpt/` layout (`openpose/ckpts/
    body_pose_model.pth`, `humanparsing/parsing_{atr,lip}.onnx`, `densepose/
    model_final_162be9.pkl`): a person registers from a photo alone. Unset: `{model_path}/ckpt`
    where that folder exists (`vton make-tiny-model` writes stand-ins there), else off (masks and
    pose must be uploaded)."""

    weights_cache_dir: Path = Path("./var/weights-cache")
    """Where converted weights are kept (DensePose's pickle as safetensors, converted on first
    use; the user's weights folder is never written)."""

    # --- service (issue 4: `vton serve`, the HTTP API and its scheduler) ------------------------

    host: str = Field("127.0.0.1", min_length=1, max_length=255)
    """Address `vton serve` listens on."""

    port: int = Field(8000, ge=1, le=65535)
    """Port `vton serve` listens on."""

    jwt_secret: SecretStr | None = Field(None, min_length=32)
    """HS256 secret of the bearer tokens; unset: dev mode (a random secret per process)."""

    token_ttl_s: int = Field(24 * 3600, ge=60, le=365 * 24 * 3600)
    """Lifetime of the tokens `vton token` and dev mode mint."""

    devices: str = Field("", pattern=r"^$|^(cpu|cuda(:\d+)?)(,(cpu|cuda(:\d+)?))*$")
    """Comma-separated devices, one worker each (`cuda:0,cuda:1`); empty: every CUDA device, else
    cpu."""

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """The model's precision; auto: float16 on CUDA, float32 on CPU."""

    fallback_dtype: Literal["auto", "none", "float32", "bfloat16"] = "auto"
    """Precision of the second model copy that retries a non-finite or black image; auto:
    bfloat16 when the model runs in float16, else none."""

    compile: bool = True
    """Regional torch.compile of the resnet and transformer blocks on CUDA, with channels_last
    (graphed step at batch 1 on an H100: 58.6 -> 48.3 ms); the first start compiles for about
    five minutes, a restart reusing `compile_cache_dir` is ready in about 50-63 s on an H100
    (warm-up of batch sizes 1..8; mostly Dynamo tracing, so it follows the host's CPU speed). A
    block that fails to compile runs eagerly."""

    compile_cache_dir: Path = Path("var/compile-cache")
    """Where torch.compile keeps its kernels between starts (TORCHINDUCTOR_CACHE_DIR)."""

    garment_features_once: bool = False
    """Opt-in speed mode that CHANGES the output: GarmentNet runs once per try-on (at the first
    timestep) instead of every step, and every step reuses its features."""

    garment_net_ahead: bool = True
    """GarmentNet for up to 8 coming timesteps in one pass when a batch has few garments (the same
    output; one try-on on an H100 -10%). Off saves GPU memory: one pass's features and
    activations, ~2 GiB at 1024x768."""

    conditioning_cache_bytes: int = Field(2 * _GiB, ge=0, le=1024 * _GiB)
    """Device memory for keyed persons' and garments' derived conditioning (latents, image
    tokens, text embeddings) in bytes, per model copy (the fallback precision keeps its own); 0
    disables it (every try-on encodes its inputs again)."""

    garment_feature_cache_gb: float = Field(0.0, ge=0, le=1024)
    """GPU memory for GarmentNet's features of every timestep per keyed garment (the same output):
    a repeat garment's try-on skips GarmentNet. 3.1 GB per garment at 20 steps and 1024x768;
    0 (the default) turns it off."""

    width: int = Field(768, ge=32, le=2048)
    """Working width of a try-on (the engine's output); a multiple of the model's size factor.
    Unset with both it and the height: the tiny model's own frame (384 x 512) for a model folder
    written by `vton make-tiny-model`, else 768."""

    height: int = Field(1024, ge=32, le=2048)
    """Working height of a try-on; 3:4 with the width is what the model was trained on."""

    max_queue: int = Field(64, ge=1, le=100_000)
    """Items (garments) that may wait per device before requests get 429."""

    batch_window_ms: float = Field(20.0, ge=0, le=10_000)
    """How long the oldest waiting item waits for compatible company to share a batch."""

    max_batch: int = Field(8, ge=1, le=256)
    """Samples per engine call at most."""

    max_batch_items: int = Field(10, ge=1, le=100)
    """Garments per batch-tryon request at most."""

    request_timeout_s: float = Field(120.0, gt=0, le=3600)
    """From a synchronous try-on's submission to its deadline (504 past it)."""

    job_timeout_s: float = Field(900.0, gt=0, le=24 * 3600)
    """From an asynchronous job's submission to its deadline (its unfinished items then fail
    with JobTimeout); a job's `deadlineSeconds` may ask for less, not more."""

    job_ttl_s: float = Field(600.0, gt=0, le=7 * 24 * 3600)
    """How long a finished job and its images stay readable by id."""

    sse_ping_s: float = Field(15.0, gt=0, le=300)
    """Seconds between keep-alive comments on an idle job event stream (proxies close idle
    connections)."""

    webhook_allowed_hosts: str = Field("", max_length=4096)
    """Comma-separated hosts a job's webhookUrl may name: `hooks.example.com`, `*.example.com`
    (subdomains) or `*` (any). A host matched only by a wildcard must resolve to public
    addresses; one listed by name may be loopback or private. Empty: webhooks are off."""

    webhook_secret: SecretStr | None = Field(None, min_length=16)
    """HMAC-SHA256 key of the webhook signature header; unset: webhooks are off (422)."""

    webhook_max_attempts: int = Field(5, ge=1, le=20)
    """Webhook delivery attempts (the first included) before it is marked failed."""

    webhook_backoff_s: float = Field(20.0, gt=0, le=3600)
    """Wait before the second webhook attempt, doubled before each further one (5 attempts:
    20 + 40 + 80 + 160 s, about 5 minutes)."""

    webhook_timeout_s: float = Field(10.0, gt=0, le=120)
    """Seconds one webhook attempt may take (connect and answer)."""

    max_upload_bytes: int = Field(20 * 2**20, ge=1024, le=2**30)
    """Largest request body accepted (413 above it)."""

    max_image_pixels: int = Field(4096 * 4096, ge=1024 * 1024, le=100_000_000)
    """Pixels an uploaded image may have (413 above it, refused from its header before any
    decoding): the 768 x 1024 working frame with ample headroom."""

    decode_memory_bytes: int = Field(_GiB, ge=16 * 2**20, le=256 * _GiB)
    """Memory for decoding uploads at once, all requests together (10 bytes a pixel: the
    decoded image and fitting's copies); a request that cannot get its share within a second
    answers 429 + Retry-After, one larger than all of it 413."""

    body_timeout_s: float = Field(60.0, gt=0, le=3600)
    """Seconds a client has to send the whole request body, from the request's start (408 past
    it, and the connection is closed): a body that never finishes holds nothing longer."""

    result_cache_bytes: int = Field(256 * 2**20, ge=1, le=64 * _GiB)
    """Memory in front of the stored results (identical requests) in bytes."""

    warmup: bool = True
    """Run one small try-on per device at start, so /ready means ready to answer fast."""

    @model_validator(mode="after")
    def _tiny_model_frame(self) -> Settings:
        """The tiny model's own working frame when neither VTON_WIDTH nor VTON_HEIGHT is set:
        its images are noise at any size, and 768 x 1024 takes it tens of seconds on a CPU."""
        frame_file = self.model_path / TINY_MODEL_FRAME_FILE
        if not {"width", "height"} & self.model_fields_set and frame_file.is_file():
            frame = json.loads(frame_file.read_text())
            self.width, self.height = int(frame["width"]), int(frame["height"])
        return self

    def preprocess_weights(self) -> Path | None:
        """The person preprocessing weights folder in force, or None when it is off."""
        if self.preprocess_path is not None:
            return self.preprocess_path
        default = self.model_path / "ckpt"
        return default if default.is_dir() else None

    # -- cluster mode (issue 17): API processes and `vton worker`s on one BullMQ queue ---------

    redis_url: str | None = Field(None, pattern=r"^rediss?://.+")
    """Redis of the BullMQ queue (redis://host:6379/0). Unset: single-host mode, the in-process
    scheduler. Set: `vton serve` queues asynchronous jobs there and `vton worker` runs them."""

    queue_name: str = Field("vton-tryon", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """The BullMQ queue's name (a NestJS producer uses the same)."""

    queue_prefix: str = Field("bull", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """BullMQ's key prefix ("bull" is also @nestjs/bullmq's default)."""

    queue_max_waiting: int = Field(256, ge=1, le=1_000_000)
    """Jobs that may wait in the queue before `vton serve` answers 429."""

    queue_lock_ms: int = Field(8_000, ge=200, le=600_000)
    """A worker's lock on a job; a killed worker's job runs again after about lock + stalled."""

    queue_stalled_ms: int = Field(4_000, ge=100, le=600_000)
    """How often live workers look for jobs whose worker died."""
