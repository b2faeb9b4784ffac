"""Service commands: `vton serve` (the HTTP API on uvicorn) and `vton token USER_ID`."""

from __future__ import annotations

import contextlib
import logging
from typing import NoReturn

import typer
from pydantic import ValidationError

from vton.config import Settings
from vton.errors import VtonError

DEV_USER = "dev-user"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _settings(**overrides: object) -> Settings:
    try:
        settings = Settings()
        return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        _fail(f"settings: {exc}")


def serve(
    host: str | None = typer.Option(None, "--host", help="default VTON_HOST (127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", help="default VTON_PORT (8000)"),
    log_level: str = typer.Option("info", "--log-level", help="debug|info|warning|error"),
) -> None:
    """Run the HTTP API: the model loads in the background, /ready says when it can answer."""
    import uvicorn

    from vton.api import create_app

    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    settings = _settings(host=host, port=port)
    app = create_app(settings, on_load_failure=lambda: setattr(server, "should_exit", True))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.request_timeout_s),
    )
    server = uvicorn.Server(config)
    log = logging.getLogger("vton.serve")
    url = f"http://{settings.host}:{settings.port}/"
    tokens = app.state.runtime.tokens
    if tokens.dev_mode:
        token = tokens.mint(DEV_USER, settings.token_ttl_s)
        log.warning(
            "DEV MODE token for user %s (valid %d s): %s", DEV_USER, settings.token_ttl_s, token
        )
    log.info("test page: %s  API docs: %sdocs", url, url)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the SIGINT it handled
        server.run()
    if app.state.runtime.load_error:
        _fail(app.state.runtime.load_error)


def token(
    user_id: str = typer.Argument(..., help="the user id the token is for (its `sub`)"),
    ttl: int | None = typer.Option(None, "--ttl", help="seconds; default VTON_TOKEN_TTL_S"),
) -> None:
    """Print a bearer token for USER_ID, signed with VTON_JWT_SECRET."""
    from vton.api.tokens import TokenCodec

    settings = _settings()
    if settings.jwt_secret is None:
        _fail(
            "VTON_JWT_SECRET is not set: a server without it runs in dev mode and prints its "
            "own token at start"
        )
    codec = TokenCodec(settings.jwt_secret.get_secret_value())
    try:
        typer.echo(codec.mint(user_id, ttl if ttl is not None else settings.token_ttl_s))
    except VtonError as exc:
        _fail(str(exc))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("token")(token)
