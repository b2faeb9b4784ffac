"""A store in a local folder: one file per key, written to a temporary file and renamed."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vton.errors import StoreUnavailable
from vton.store.base import MissingObject, Store, check_key, check_prefix

_TMP_PREFIX = ".tmp-"


def write_atomic(path: Path, data: bytes) -> None:
    """Writes `data` to `path` so that no reader ever sees a partial file."""
    for attempt in range(3):  # a concurrent delete_prefix may prune the folder we just made
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX)
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalStore(Store):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.url = f"file://{self.root}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(f"local store {self.root}: {e}") from e

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise MissingObject(key) from None
        except OSError as e:
            raise StoreUnavailable(f"local store {self.root}: reading {key}: {e}") from e

    def put(self, key: str, data: bytes) -> None:
        try:
            write_atomic(self._path(key), data)
        except OSError as e:
            raise StoreUnavailable(f"local store {self.root}: writing {key}: {e}") from e

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as e:
            raise StoreUnavailable(f"local store {self.root}: deleting {key}: {e}") from e

    def list(self, prefix: str) -> Iterator[str]:
        folder = self.root / check_prefix(prefix).rpartition("/")[0]
        keys = []
        for dirpath, _, filenames in os.walk(folder):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if rel == "." else f"{rel}/{name}"
                if not name.startswith(_TMP_PREFIX) and key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def delete_prefix(self, prefix: str) -> int:
        count = super().delete_prefix(prefix)
        if prefix.endswith("/"):  # a whole folder: drop the directories it leaves empty
            prune_empty_dirs(self.root / check_prefix(prefix))
        return count


def prune_empty_dirs(folder: Path) -> None:
    """Removes `folder` and its subfolders that are empty, bottom-up; keeps anything not empty."""
    for dirpath, _, _ in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)
