"""`vton register-person`, `register-garment`, `delete-*`, `migrate-store` (in process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import random_image
from vton.cli import app
from vton.store import LocalStore

ROOT = "users/u1/vton-cache/"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStore:
    monkeypatch.setenv("VTON_STORE", f"file://{tmp_path / 'store'}")
    return LocalStore(tmp_path / "store")


def vton(*args: str):
    return CliRunner().invoke(app, list(args))


def image_file(folder: Path, name: str, image: Image.Image) -> str:
    path = folder / name
    image.save(path)
    return str(path)


def test_register_and_delete_a_person(store: LocalStore, tmp_path: Path) -> None:
    photo = image_file(tmp_path, "photo.jpg", random_image(0, 300, 400))
    mask = image_file(tmp_path, "mask.png", Image.new("L", (300, 400), 255))
    pose = image_file(tmp_path, "pose.png", random_image(1, 300, 400))
    args = ["register-person", "u1", "--photo", photo, "--pose", pose]
    result = vton(*args, "--mask", f"upper_body={mask}", "--mask", f"dresses={mask}")
    assert result.exit_code == 0, result.output
    assert "registered person of u1 (upper_body, dresses)" in result.output
    assert store.exists(ROOT + "dresses/mask_gray.png")

    result = vton("delete-person", "u1")
    assert (result.exit_code, result.output.strip()) == (0, "deleted person of u1")
    assert not list(store.list("users/"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["register-person", "../u1", "--mask", "upper_body={mask}"], "user_id"),
        (["register-person", "u1", "--mask", "upper_body"], "CATEGORY=PATH"),
        (["register-person", "u1", "--mask", "hats={mask}"], "category"),
        (["register-person", "u1", "--mask", "upper_body={tmp}/none.png"], "cannot read"),
        (["delete-garment", "u1", "c/1"], "clothing_id"),
    ],
)
def test_bad_arguments_fail_with_one_line(
    store: LocalStore, tmp_path: Path, args: list[str], message: str
) -> None:
    photo = image_file(tmp_path, "photo.png", random_image(0))
    mask = image_file(tmp_path, "mask.png", Image.new("L", (96, 128)))
    if args[0] == "register-person":
        args = [*args, "--photo", photo, "--pose", photo]
    result = vton(*[a.format(mask=mask, tmp=tmp_path) for a in args])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and message in result.output
    assert not list(store.list(""))


def test_register_and_delete_a_garment(
    store: LocalStore, tmp_path: Path, tiny_model_dir: Path
) -> None:
    photo = image_file(tmp_path, "garment.png", random_image(2, 200, 200))
    result = vton(
        "register-garment", "u1", "c1", "--photo", photo, "--description", "red shirt",
        "--category", "upper_body", "--model", str(tiny_model_dir),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "registered garment c1 of u1 (upper_body)" in result.output
    assert store.exists(ROOT + "text/c1.safetensors")
    assert vton("delete-garment", "u1", "c1").output.strip() == "deleted garment c1 of u1"
    assert vton("delete-garment", "u1", "c1").output.strip() == "no garment c1 of u1"


def test_migrate_store_reports_refusals_and_exits_1(store: LocalStore) -> None:
    store.put(ROOT + "garments/c1.json", b'{"category": "dresses", "description": "d"}')
    store.put(ROOT + "text/c1.pkl", b"not a pickle at all")
    result = vton("migrate-store", "--dry-run")
    assert result.exit_code == 1
    assert "refused: garment u1/c1" in result.output
    assert "dry run: migrated 0 persons and 0 garments" in result.output
    store.delete(ROOT + "text/c1.pkl")
    store.delete(ROOT + "garments/c1.json")
    assert vton("migrate-store").exit_code == 0
