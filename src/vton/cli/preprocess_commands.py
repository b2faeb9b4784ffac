"""Person preprocessing from the command line, writing every intermediate in the formats of
shared/reference/preprocess (for inspection and for comparing with the original):

    vton preprocess person PHOTO --out DIR      framing, keypoints, parse map, every mask, DensePose
    vton preprocess mask --parse P --keypoints K --out DIR     the mask rules alone
    vton preprocess densepose PHOTO --out DIR   DensePose alone
    vton convert-weights densepose IN.pkl OUT.safetensors

`--original` reproduces the original's defects (each module's docstring lists them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from vton.errors import InvalidInput, VtonError
from vton.store.ids import Category

MODEL_TYPES = ("hd", "dc")
preprocess_app = typer.Typer(help="Person preprocessing: pose, parsing, masks, DensePose.")
convert_app = typer.Typer(help="Convert weights to safetensors.")

PhotoArg = Annotated[Path, typer.Argument(help="the person photo")]
OutOpt = Annotated[Path, typer.Option("--out", help="folder to write into")]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="IDM-VTON ckpt/ folder [VTON_PREPROCESS_PATH, else {VTON_MODEL_PATH}/ckpt]",
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N")]
CropOpt = Annotated[bool, typer.Option("--crop", help="frame by the centred 3:4 crop")]
OriginalOpt = Annotated[
    bool,
    typer.Option("--original", help="reproduce the original's defects (to compare with IDM-VTON)"),
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _weights(weights: Path | None) -> tuple[Path, Path]:
    """The weights folder and the converted-weights cache."""
    from vton.config import Settings

    settings = Settings()
    folder = weights or settings.preprocess_weights()
    if folder is None:
        raise InvalidInput("--weights: no weights folder (VTON_PREPROCESS_PATH is unset)")
    return folder, settings.weights_cache_dir


def _device(device: str):
    from vton.engine.devices import parse_device

    return parse_device(device)


def analyzer_for(weights: Path | None, device: str):
    from vton.preprocess.body.analyze import PersonAnalyzer

    folder, cache = _weights(weights)
    return PersonAnalyzer.load(folder, str(_device(device)), cache)


def _framed(photo: Path, crop: bool):
    from vton.preprocess.fit import fit_photo
    from vton.preprocess.inputs import read_image

    try:
        data = photo.read_bytes()
    except OSError as e:
        raise InvalidInput(f"PHOTO: cannot read {photo} ({e.strerror})") from e
    return fit_photo(read_image(data, "PHOTO"), "crop" if crop else "letterbox")[0]


def _write_masks(out: Path, parse, points, categories, model_types, original: bool) -> None:
    from vton.preprocess.body.masks import mask_location, upscale_mask

    for model_type in model_types:
        for category in categories:
            mask, gray = mask_location(model_type, category, parse, points, original=original)
            stem = f"{model_type}_{category}"
            mask.save(out / f"{stem}_mask.png")
            gray.save(out / f"{stem}_mask_gray.png")
            if model_type == "hd":
                upscale_mask(mask).save(out / f"{stem}_mask_768x1024.png")


def _write_densepose(out: Path, found, image, original: bool) -> None:
    """densepose.png (768 x 1024), densepose_labels.png and densepose.json of `found` on the
    384 x 512 `image`."""
    from PIL import Image

    from vton.preprocess.body.densepose import (
        label_map,
        painted_instance,
        pose_image,
        render_pose,
    )

    pose_image(render_pose(found, image, original=original)).save(out / "densepose.png")
    Image.fromarray(label_map(found, original=original)).save(out / "densepose_labels.png")
    instances = [
        {"box": [float(v) for v in box], "score": float(score)}
        for box, score in zip(found.boxes, found.scores, strict=True)
    ]
    chosen = painted_instance(found, original=original)
    (out / "densepose.json").write_text(json.dumps({"instances": instances, "chosen": chosen}))


@preprocess_app.command("person")
def person_command(
    photo: PhotoArg,
    out: OutOpt,
    weights: WeightsOpt = None,
    device: DeviceOpt = "cpu",
    crop: CropOpt = False,
    original: OriginalOpt = False,
) -> None:
    """Everything registration computes from a photo: person_768x1024.png, keypoints.json,
    parse.png, {hd,dc}_{category}_mask(_gray).png, hd_*_mask_768x1024.png, densepose.png,
    densepose_labels.png, densepose.json."""
    from vton.preprocess.body.parsing import palette_image

    try:
        human = _framed(photo, crop)
        analysis = analyzer_for(weights, device).analyze(human, original=original)
    except VtonError as e:
        _fail(str(e))
    out.mkdir(parents=True, exist_ok=True)
    human.save(out / "person_768x1024.png")
    (out / "keypoints.json").write_text(json.dumps(analysis.keypoints.to_json()))
    palette_image(analysis.parse).save(out / "parse.png")
    categories = [c.value for c in Category]
    _write_masks(out, analysis.parse, analysis.keypoints.points, categories, MODEL_TYPES, original)
    _write_densepose(out, analysis.densepose, analysis.image, original)
    timings = " ".join(f"{k}_ms={v:.0f}" for k, v in analysis.timings_ms.items())
    typer.echo(f"wrote {out} (people={analysis.people} {timings})")


@preprocess_app.command("mask")
def mask_command(
    parse: Annotated[Path, typer.Option("--parse", help="parse.png (labels 0..18, 384x512)")],
    keypoints: Annotated[
        Path, typer.Option("--keypoints", help='keypoints.json {"pose_keypoints_2d": ...}')
    ],
    out: OutOpt,
    category: Annotated[
        list[str] | None, typer.Option("--category", help="default: every category")
    ] = None,
    model_type: Annotated[
        list[str] | None, typer.Option("--model-type", help="hd|dc (default: both)")
    ] = None,
    original: OriginalOpt = False,
) -> None:
    """The original mask rules (get_mask_location) on a parse map and keypoints."""
    from vton.preprocess.body.parsing import read_label_map

    try:
        categories = [Category.parse(c).value for c in category or [c.value for c in Category]]
        labels = read_label_map(parse)
        points = _read_keypoints(keypoints)
        out.mkdir(parents=True, exist_ok=True)
        _write_masks(out, labels, points, categories, model_type or MODEL_TYPES, original)
    except VtonError as e:
        _fail(str(e))
    typer.echo(f"wrote {out}")


def _read_keypoints(path: Path) -> list[list[float]]:
    try:
        points = json.loads(path.read_text())["pose_keypoints_2d"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InvalidInput(f"--keypoints: {path} is not a keypoints.json ({e})") from e
    if len(points) != 18 or any(len(p) != 2 for p in points):
        raise InvalidInput(f"--keypoints: {path} must hold 18 [x, y] pairs")
    return points


@preprocess_app.command("densepose")
def densepose_command(
    photo: PhotoArg,
    out: OutOpt,
    weights: WeightsOpt = None,
    device: DeviceOpt = "cpu",
    crop: CropOpt = False,
    original: OriginalOpt = False,
) -> None:
    """DensePose alone: densepose.png (768x1024), densepose_labels.png (384x512) and
    densepose.json (instances in detection order, boxes in the 384x512 frame, the chosen one)."""
    from vton.preprocess.body.analyze import load_densepose, model_image

    try:
        image = model_image(_framed(photo, crop))
        folder, cache = _weights(weights)
        found = load_densepose(folder, str(_device(device)), cache)(image)
        out.mkdir(parents=True, exist_ok=True)
        _write_densepose(out, found, image, original)
    except VtonError as e:
        _fail(str(e))
    typer.echo(f"wrote {out} ({len(found.scores)} instances)")


@convert_app.command("densepose")
def convert_densepose_command(
    source: Path = typer.Argument(..., help="model_final_162be9.pkl (detectron2 model zoo)"),
    target: Path = typer.Argument(..., help="the .safetensors to write"),
) -> None:
    """DensePose's detectron2 pickle as safetensors, read through a restricted unpickler (only
    numpy arrays; anything else is refused without running it) and checked key by key."""
    from vton.preprocess.body.densepose_weights import convert_densepose_pickle

    try:
        convert_densepose_pickle(source, target)
    except VtonError as e:
        _fail(str(e))
    typer.echo(f"wrote {target}")


def register(app: typer.Typer) -> None:
    app.add_typer(preprocess_app, name="preprocess")
    app.add_typer(convert_app, name="convert-weights")
