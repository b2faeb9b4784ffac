"""The HTTP API: routes, auth, schemas, the error mapping and the test page."""

from vton.api.app import create_app

__all__ = ["create_app"]
