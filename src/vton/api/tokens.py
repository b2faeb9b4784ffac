"""Bearer tokens: HS256 JWTs whose `sub` is the user id; `exp` is required and honoured."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt

from vton.api.errors import Unauthorized
from vton.errors import InvalidInput
from vton.store.ids import check_id

ALGORITHM = "HS256"
LEEWAY_S = 5
"""Clock skew tolerated on `exp`."""


@dataclass(frozen=True)
class TokenCodec:
    """Mints and checks tokens with one secret. `dev_mode`: the secret was made up at start."""

    secret: str
    dev_mode: bool = False

    @classmethod
    def from_secret(cls, secret: str | None) -> TokenCodec:
        """The codec for VTON_JWT_SECRET; none given: dev mode with a random secret."""
        if secret is None:
            return cls(secrets.token_urlsafe(48), dev_mode=True)
        return cls(secret)

    def mint(self, user_id: str, ttl_s: int) -> str:
        check_id("user_id", user_id)
        if ttl_s <= 0:
            raise InvalidInput(f"ttl: must be > 0 seconds, got {ttl_s}")
        now = int(time.time())
        claims = {"sub": user_id, "iat": now, "exp": now + ttl_s}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def user_id(self, token: str) -> str:
        """The token's user id; Unauthorized if it is not a valid, unexpired token of ours."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "exp"]},
                leeway=LEEWAY_S,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        exp = claims["exp"]  # PyJWT takes "123" for 123: only a JSON number is one
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise Unauthorized("invalid token: exp must be a number")
        try:
            return check_id("sub", claims["sub"])
        except InvalidInput as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
