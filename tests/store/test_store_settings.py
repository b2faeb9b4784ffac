"""Settings (environment, prefix VTON_) and the store they open."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vton.config import Settings
from vton.errors import InvalidInput
from vton.store import LocalStore, S3Store, open_store


def test_every_setting_has_a_default_and_a_description() -> None:
    for name, field in Settings.model_fields.items():
        assert not field.is_required(), name
        assert field.description, f"{name} has no docstring"


def test_defaults_open_a_local_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.store == "file://./var/store"
    assert settings.model_path == Path("var/tiny-model")
    store = open_store(settings)
    assert isinstance(store, LocalStore) and store.root == tmp_path / "var/store"


def test_s3_from_the_environment(monkeypatch: pytest.MonkeyPatch, s3_server) -> None:
    monkeypatch.setenv("VTON_STORE", "s3://my-bucket/some/prefix")
    monkeypatch.setenv("VTON_S3_ENDPOINT_URL", s3_server.endpoint_url)
    store = open_store(Settings())
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == ("my-bucket", "some/prefix/")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VTON_LOAD_WORKERS", "0"),
        ("VTON_L1_CACHE_BYTES", "-1"),
        ("VTON_STORE", "ftp://x"),
        ("VTON_S3_ENDPOINT_URL", "localhost:9000"),
    ],
)
def test_out_of_bounds_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("VTON_").lower()):
        Settings()


def test_an_s3_url_without_a_bucket_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no bucket"):
        open_store(Settings(store="s3:///prefix"))
