"""Every vton setting, read from the environment and `.env` (prefix `VTON_`).

AWS credentials and region are not here: boto3 reads the standard `AWS_*` variables itself.
One flat class: add a field with a default, bounds and a one-line docstring.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_GiB = 1024**3


class Settings(BaseSettings):
    """vton's settings; each attribute docstring is the field's description."""

    model_config = SettingsConfigDict(
        env_prefix="VTON_",
        env_file=".env",
        extra="ignore",
        use_attribute_docstrings=True,
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
