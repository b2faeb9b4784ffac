"""Artifact commands: register and delete persons and garments, migrate a legacy store.

The store is the one VTON_STORE names (see vton.config.Settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from pydantic import ValidationError

from vton.cli.preprocess_commands import CropOpt, DeviceOpt, WeightsOpt, analyzer_for
from vton.config import Settings
from vton.errors import InvalidInput, VtonError
from vton.store import Store, open_store


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        raise InvalidInput(f"settings: {e}") from e


def _store() -> Store:
    return open_store(_settings())


def _image(path: Path, what: str):
    from vton.preprocess.inputs import read_image

    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"{what}: cannot read {path} ({e.strerror})") from e
    return read_image(data, what)


def _parse_masks(specs: list[str]) -> dict[str, Path]:
    masks = {}
    for spec in specs:
        category, sep, path = spec.partition("=")
        if not sep or not path:
            raise InvalidInput(f"--mask: expected CATEGORY=PATH, got {spec!r}")
        masks[category] = Path(path)
    return masks


def register_person_command(
    user_id: str = typer.Argument(..., help="the user whose person this is"),
    photo: Path = typer.Option(..., "--photo", help="photo of the person"),
    mask: list[str] = typer.Option(
        None, "--mask", help="CATEGORY=PATH (repeatable; default: computed); white = repaint"
    ),
    pose: Path | None = typer.Option(None, "--pose", help="DensePose image (default: computed)"),
    crop: CropOpt = False,
    weights: WeightsOpt = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Register (or replace) a user's person from a photo: the masks of every category and the
    DensePose image are computed from it unless given."""
    from vton.preprocess.person import register_person

    try:
        masks = {c: _image(p, f"--mask {c}") for c, p in _parse_masks(mask or []).items()}
        analyzer = None
        if not masks or pose is None:
            analyzer = analyzer_for(weights, device)
        manifest = register_person(
            _store(),
            user_id,
            _image(photo, "--photo"),
            masks,
            None if pose is None else _image(pose, "--pose"),
            analyzer=analyzer,
            framing="crop" if crop else "letterbox",
        )
    except VtonError as e:
        _fail(str(e))
    categories = ", ".join(c.value for c in manifest.categories)
    found = manifest.detection
    detail = f", {found.people} people found, computed {'/'.join(found.computed)}" if found else ""
    typer.echo(f"registered person of {user_id} ({categories}{detail}), version {manifest.version}")


def register_garment_command(
    user_id: str = typer.Argument(..., help="the user who owns the garment"),
    clothing_id: str = typer.Argument(..., help="the garment's id"),
    photo: Path = typer.Option(..., "--photo", help="photo of the garment"),
    description: str = typer.Option(..., "--description", help="e.g. 'short sleeve red t-shirt'"),
    category: str = typer.Option(..., "--category", help="upper_body|lower_body|dresses"),
    model: Path | None = typer.Option(None, "--model", help="checkpoint [VTON_MODEL_PATH]"),
    device: str = typer.Option("cpu", "--device", help="device for the text encoders"),
) -> None:
    """Register (or replace) a garment: photo, description, category, text embeddings."""
    from vton.engine.checkpoint import load_model
    from vton.engine.devices import parse_device, quiet_model_libraries
    from vton.engine.text import PromptEncoder
    from vton.preprocess.garment import register_garment

    quiet_model_libraries()
    try:
        store = _store()
        image = _image(photo, "--photo")
        loaded = load_model(model or _settings().model_path, device=parse_device(device))
        manifest = register_garment(
            store, PromptEncoder(loaded), user_id, clothing_id, image, description, category
        )
    except VtonError as e:
        _fail(str(e))
    typer.echo(
        f"registered garment {clothing_id} of {user_id} ({manifest.category.value}), "
        f"version {manifest.version}"
    )


def delete_person_command(user_id: str = typer.Argument(...)) -> None:
    """Delete a user's person (every category)."""
    from vton.preprocess.person import delete_person

    try:
        existed = delete_person(_store(), user_id)
    except VtonError as e:
        _fail(str(e))
    typer.echo(f"deleted person of {user_id}" if existed else f"no person of {user_id}")


def delete_garment_command(
    user_id: str = typer.Argument(...), clothing_id: str = typer.Argument(...)
) -> None:
    """Delete one garment of a user."""
    from vton.preprocess.garment import delete_garment

    try:
        existed = delete_garment(_store(), user_id, clothing_id)
    except VtonError as e:
        _fail(str(e))
    typer.echo(
        f"deleted garment {clothing_id} of {user_id}"
        if existed
        else f"no garment {clothing_id} of {user_id}"
    )


def migrate_store_command(
    dry_run: bool = typer.Option(False, "--dry-run", help="check everything, write nothing"),
    delete_pickles: bool = typer.Option(
        False, "--delete-pickles", help="remove each .pkl once its safetensors is written"
    ),
) -> None:
    """Add manifests and versions to a legacy store; convert pickled text to safetensors
    (read only with torch.load(weights_only=True); anything else is refused). Exit 1 if any
    item was refused."""
    from vton.preprocess.migrate import migrate_store

    try:
        report = migrate_store(_store(), dry_run=dry_run, delete_pickles=delete_pickles)
    except VtonError as e:
        _fail(str(e))
    for line in report.refused:
        typer.echo(f"refused: {line}", err=True)
    typer.echo(("dry run: " if dry_run else "") + report.summary())
    if report.refused:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.command("register-person")(register_person_command)
    app.command("register-garment")(register_garment_command)
    app.command("delete-person")(delete_person_command)
    app.command("delete-garment")(delete_garment_command)
    app.command("migrate-store")(migrate_store_command)
