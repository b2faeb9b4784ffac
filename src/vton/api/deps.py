"""Dependencies as `Annotated` aliases, so route signatures read like prose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vton.api.errors import Unauthorized
from vton.api.jobs_backend import JobsBackend
from vton.api.observe import annotate
from vton.api.runtime import Runtime
from vton.config import Settings
from vton.service import Service

_bearer = HTTPBearer(auto_error=False, description="A JWT from `vton token USER_ID`.")


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


def get_service(runtime: RuntimeDep) -> Service:
    return runtime.require()


def get_jobs(runtime: RuntimeDep) -> JobsBackend:
    return runtime.jobs


def get_user(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The user id of the bearer token."""
    if credentials is None:
        raise Unauthorized("missing bearer token (Authorization: Bearer <JWT>)")
    user_id = runtime.tokens.user_id(credentials.credentials)
    annotate(request, user=user_id)
    return user_id


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[Service, Depends(get_service)]
JobsDep = Annotated[JobsBackend, Depends(get_jobs)]
CurrentUser = Annotated[str, Depends(get_user)]
