"""Engine commands: `vton tryon` (a one-off try-on from files) and `vton make-tiny-model`.

`vton tryon`'s options are a contract: outside tools check compatibility through them.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import typer
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vton.errors import VtonError

TRYON_HELP = "One try-on from files: person, mask, DensePose image and garment."


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _read_latents(path: Path):
    from vton.errors import InvalidInput

    if not path.is_file():
        raise InvalidInput(f"--latents: file not found: {path}")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidInput(f"--latents: not a safetensors file: {path} ({exc})") from exc
    if "latents" not in tensors:
        raise InvalidInput(f"--latents: {path} holds no tensor named 'latents' ({sorted(tensors)})")
    return tensors["latents"]


def tryon(
    model: Path = typer.Option(..., "--model", help="IDM-VTON checkpoint folder"),
    person: Path = typer.Option(..., "--person"),
    mask: Path = typer.Option(..., "--mask", help="white = area to repaint"),
    pose: Path = typer.Option(..., "--pose", help="DensePose image"),
    garment: Path = typer.Option(..., "--garment"),
    description: str = typer.Option(..., "--description"),
    out: Path = typer.Option(..., "--out", help="output PNG"),
    steps: int = typer.Option(30, "--steps"),
    scheduler: str = typer.Option("ddpm", "--scheduler", help="ddpm|ddim|euler|dpmpp|unipc"),
    guidance: float = typer.Option(2.0, "--guidance"),
    seed: int = typer.Option(42, "--seed"),
    height: int = typer.Option(1024, "--height"),
    width: int = typer.Option(768, "--width"),
    latents: Path | None = typer.Option(None, "--latents", help="safetensors with 'latents'"),
    dtype: str = typer.Option("float32", "--dtype", help="float32|float16|bfloat16"),
    device: str = typer.Option("cpu", "--device", help="cpu|cuda"),
    out_raw: Path | None = typer.Option(None, "--out-raw", help="decoded image, float32 [-1,1]"),
) -> None:
    from vton.engine.checkpoint import load_model
    from vton.engine.devices import parse_device, parse_dtype, quiet_model_libraries
    from vton.engine.images import open_image
    from vton.engine.noise_schedulers import SCHEDULERS
    from vton.engine.optimize import EngineOptimizations
    from vton.engine.pipeline import TryOnPipeline
    from vton.engine.types import DiffusionOptions, SchedulerName, TryOnSample
    from vton.errors import InvalidInput

    quiet_model_libraries()
    try:
        if scheduler not in SCHEDULERS:
            raise InvalidInput(
                f"--scheduler: unknown {scheduler!r}; choose one of {', '.join(SCHEDULERS)}"
            )
        torch_dtype, torch_device = parse_dtype(dtype), parse_device(device)
        sample = TryOnSample(
            person=open_image(str(person), "--person"),
            mask=open_image(str(mask), "--mask"),
            pose=open_image(str(pose), "--pose"),
            garment=open_image(str(garment), "--garment"),
            description=description,
            seed=seed,
            latents=_read_latents(latents) if latents is not None else None,
        )
        options = DiffusionOptions(
            steps=steps,
            scheduler=cast(SchedulerName, scheduler),  # checked against SCHEDULERS above
            guidance_scale=guidance,
            height=height,
            width=width,
        )
        # One try-on per process: compiling would cost minutes to save milliseconds.
        pipeline = TryOnPipeline(
            load_model(model, dtype=torch_dtype, device=torch_device),
            EngineOptimizations(compile=False),
        )
        (result,) = pipeline([sample], options)
    except VtonError as exc:
        _fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    result.pil.save(out, format="PNG")
    if out_raw is not None:
        out_raw.parent.mkdir(parents=True, exist_ok=True)
        save_file({"image": result.image[None].contiguous()}, out_raw)
    timings = " ".join(f"{k}_ms={v:.0f}" for k, v in result.timings_ms.items())
    typer.echo(f"wrote {out} ({width}x{height}) {timings}")


def make_tiny_model_command(
    directory: Path = typer.Argument(..., help="folder to write the checkpoint into"),
    seed: int = typer.Option(0, "--seed", help="seed of the random weights"),
) -> None:
    """Write a tiny random-weight IDM-VTON checkpoint in the real layout (images are noise), and
    under ckpt/ stand-ins of the person preprocessing weights in IDM-VTON's own layout."""
    from vton.engine.devices import quiet_model_libraries
    from vton.engine.tiny import make_tiny_model
    from vton.preprocess.body.standins import write_standins

    quiet_model_libraries()
    make_tiny_model(directory, seed=seed)
    write_standins(directory / "ckpt")
    typer.echo(f"wrote tiny IDM-VTON checkpoint and preprocessing stand-ins to {directory}")


def register(app: typer.Typer) -> None:
    app.command("tryon", help=TRYON_HELP)(tryon)
    app.command("make-tiny-model")(make_tiny_model_command)
