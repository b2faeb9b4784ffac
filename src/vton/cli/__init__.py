"""The `vton` command line: one typer app, commands grouped by area in sibling modules."""

from __future__ import annotations

import typer

from vton.cli import (
    artifact_commands,
    engine_commands,
    preprocess_commands,
    serve_commands,
    worker_commands,
)

app = typer.Typer(
    help="vton: virtual try-on (IDM-VTON)", no_args_is_help=True, add_completion=False
)
engine_commands.register(app)
artifact_commands.register(app)
serve_commands.register(app)
preprocess_commands.register(app)
worker_commands.register(app)


def main() -> None:
    app()
