"""The API's errors and the one place where every error becomes an HTTP status.

    VtonError (vton.errors)
    ├── InvalidInput .................. 422   (request validation errors too)
    │   ├── PayloadTooLarge ........... 413   (body over VTON_MAX_UPLOAD_BYTES, chunked or not)
    │   ├── ImageTooLarge ............. 413   (over VTON_MAX_IMAGE_PIXELS or the decode budget)
    │   └── BodyTimeout ............... 408   (body not received within VTON_BODY_TIMEOUT_S)
    ├── Unauthorized .................. 401   (+ WWW-Authenticate: Bearer)
    ├── NotRegistered ................. 404   (also another user's ids and jobs)
    ├── NotReady ...................... 503   (+ Retry-After: the model is still loading)
    ├── StoreUnavailable .............. 503   (+ Retry-After)
    ├── Busy .......................... 429   (+ Retry-After: VTON_DECODE_MEMORY_BYTES is taken)
    ├── IdempotencyConflict ........... 409   (an Idempotency-Key reused with another body)
    ├── CheckpointError, CorruptArtifact 500
    └── SchedulerError (vton.scheduler.errors)
        ├── QueueFull ................. 429   (+ Retry-After)
        ├── SchedulerClosed ........... 503
        ├── JobTimeout ................ 504
        ├── JobCancelled .............. 409
        ├── OutOfMemory ............... 503
        └── NonFiniteOutput, EngineFailed 500

Every error answers `{"error": <type name>, "detail": <message>}`, also the router's own (an
unknown route 404 `NotFound`, a method the route lacks 405 `MethodNotAllowed` with `Allow`); an
unexpected exception is logged with its traceback and answers 500 without details.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from vton.api.idempotency import IdempotencyConflict
from vton.errors import (
    Busy,
    ImageTooLarge,
    InvalidInput,
    NotRegistered,
    StoreUnavailable,
    VtonError,
)
from vton.scheduler.errors import (
    JobCancelled,
    JobTimeout,
    OutOfMemory,
    QueueFull,
    SchedulerClosed,
)

log = logging.getLogger(__name__)


class PayloadTooLarge(InvalidInput):
    """The request body is larger than the server accepts."""


class BodyTimeout(InvalidInput):
    """The client did not send the whole request body in time."""


class Unauthorized(VtonError):
    """No bearer token, or one that is malformed, wrongly signed or expired."""


class NotReady(VtonError):
    """The service is still loading the model."""


_STATUS: tuple[tuple[type[VtonError], int], ...] = (  # first match wins: subclasses first
    (PayloadTooLarge, 413),
    (ImageTooLarge, 413),
    (BodyTimeout, 408),
    (InvalidInput, 422),
    (Unauthorized, 401),
    (NotRegistered, 404),
    (QueueFull, 429),
    (Busy, 429),
    (JobTimeout, 504),
    (JobCancelled, 409),
    (IdempotencyConflict, 409),
    (NotReady, 503),
    (SchedulerClosed, 503),
    (StoreUnavailable, 503),
    (OutOfMemory, 503),
)
NOT_READY_RETRY_S = 5


def status_for(error: VtonError) -> int:
    for error_type, status in _STATUS:
        if isinstance(error, error_type):
            return status
    return 500


def error_response(error: VtonError) -> JSONResponse:
    status = status_for(error)
    headers: dict[str, str] = {}
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(error, (QueueFull, Busy, StoreUnavailable)):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    elif isinstance(error, NotReady):
        headers["Retry-After"] = str(NOT_READY_RETRY_S)
    if status >= 500:
        log.warning("%s answered %d: %s", type(error).__name__, status, error)
    body = {"error": type(error).__name__, "detail": str(error)}
    return JSONResponse(body, status_code=status, headers=headers)


def validation_message(exc: RequestValidationError) -> str:
    """One line per problem, `where: what` (never echoing the input: it may be an image)."""
    parts = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":  # loc: ("body", offset)
            parts.append(f"body: not valid JSON ({error.get('ctx', {}).get('error', 'invalid')})")
            continue
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


async def _vton_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VtonError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(InvalidInput(validation_message(exc)))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """The router's and Starlette's own errors (unknown route, method not allowed) in the API's
    shape: the status phrase as the type, e.g. `NotFound`."""
    assert isinstance(exc, HTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = str(exc.detail)
    if detail == phrase:  # the router's own: say what was asked
        detail = f"{phrase.lower()}: {request.method} {request.url.path}"
    body = {"error": "".join(phrase.title().split()), "detail": detail}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "InternalError", "detail": "internal error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(VtonError, _vton_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
