"""Bearer tokens on every /api route, and isolation between users (another user's ids: 404)."""

from __future__ import annotations

import httpx
import jwt
import pytest
from typer.testing import CliRunner

from tests.api.live import SECRET, LiveServer, new_user, register_garment, register_person
from vton.api.errors import Unauthorized
from vton.api.tokens import TokenCodec
from vton.cli import app as cli

API_ROUTES = [
    ("POST", "/api/fitting/single-item-tryon-v2"),
    ("POST", "/api/fitting/single-item-tryon"),
    ("POST", "/api/fitting/batch-tryon"),
    ("POST", "/api/jobs"),
    ("GET", "/api/jobs/0123abcd"),
    ("GET", "/api/jobs/0123abcd/events"),
    ("DELETE", "/api/jobs/0123abcd"),
    ("PUT", "/api/person"),
    ("GET", "/api/person"),
    ("DELETE", "/api/person"),
    ("POST", "/api/clothing"),
    ("GET", "/api/clothing"),
    ("GET", "/api/clothing/shirt"),
    ("GET", "/api/clothing/shirt/image"),
    ("DELETE", "/api/clothing/shirt"),
    ("POST", "/api/cache/warmup"),
]


def bad_tokens() -> dict[str, str]:
    return {
        "missing": "",
        "garbage": "Bearer not-a-jwt",
        "wrong-secret": "Bearer " + jwt.encode({"sub": "u", "exp": 2**40}, "y" * 48, "HS256"),
        "expired": "Bearer " + jwt.encode({"sub": "u", "exp": 1000}, SECRET, "HS256"),
        "no-exp": "Bearer " + jwt.encode({"sub": "u"}, SECRET, "HS256"),
        "string-exp": "Bearer " + jwt.encode({"sub": "u", "exp": str(2**40)}, SECRET, "HS256"),
        "bool-exp": "Bearer " + jwt.encode({"sub": "u", "exp": True}, SECRET, "HS256"),
        "bad-sub": "Bearer " + jwt.encode({"sub": "../x", "exp": 2**40}, SECRET, "HS256"),
        "none-alg": "Bearer " + jwt.encode({"sub": "u", "exp": 2**40}, None, "none"),
    }


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
def test_every_api_route_needs_a_valid_token(server: LiveServer, method: str, path: str) -> None:
    for name, header in bad_tokens().items():
        headers = {"Authorization": header} if header else {}
        response = httpx.request(method, server.url + path, headers=headers, json={})
        assert response.status_code == 401, (name, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "Unauthorized"


def test_expired_token_says_so(server: LiveServer) -> None:
    token = jwt.encode({"sub": "u", "exp": 1000}, SECRET, "HS256")
    response = httpx.get(server.url + "/api/person", headers={"Authorization": f"Bearer {token}"})
    assert response.json()["detail"] == "the token has expired"


def test_another_users_ids_answer_404(server: LiveServer) -> None:
    owner, other = new_user(), new_user()
    with server.client(owner) as alice, server.client(other) as bob:
        register_person(alice)
        register_garment(alice, "secret-dress")
        job = alice.post(
            "/api/jobs", json={"type": "single", "clothingId": "secret-dress", "denoiseSteps": 1}
        ).json()["jobId"]
        register_person(bob)
        for method, path, body in [
            ("GET", "/api/clothing/secret-dress", None),
            ("GET", "/api/clothing/secret-dress/image", None),
            ("DELETE", "/api/clothing/secret-dress", None),
            ("POST", "/api/fitting/single-item-tryon-v2", {"clothingId": "secret-dress"}),
            ("POST", "/api/cache/warmup", {"clothingIds": ["secret-dress"]}),
            ("GET", f"/api/jobs/{job}", None),
            ("GET", f"/api/jobs/{job}/events", None),
            ("DELETE", f"/api/jobs/{job}", None),
        ]:
            response = bob.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
        assert bob.get("/api/clothing").json()["items"] == []
        assert alice.get("/api/clothing/secret-dress").status_code == 200
        assert alice.get(f"/api/jobs/{job}").status_code == 200


def test_vton_token_mints_a_token_the_server_accepts(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VTON_JWT_SECRET", SECRET)
    result = CliRunner().invoke(cli, ["token", "cli-user", "--ttl", "60"])
    assert result.exit_code == 0, result.output
    headers = {"Authorization": f"Bearer {result.output.strip()}"}
    response = httpx.get(server.url + "/api/clothing", headers=headers)
    assert response.status_code == 200
    claims = jwt.decode(result.output.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "cli-user" and claims["exp"] - claims["iat"] == 60


def test_vton_token_refuses_without_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VTON_JWT_SECRET", raising=False)
    monkeypatch.chdir("/")  # no .env
    result = CliRunner().invoke(cli, ["token", "u"])
    assert result.exit_code == 2
    assert "VTON_JWT_SECRET is not set" in result.output


def test_dev_mode_signs_with_a_random_secret() -> None:
    first, second = TokenCodec.from_secret(None), TokenCodec.from_secret(None)
    assert first.dev_mode and not TokenCodec.from_secret(SECRET).dev_mode
    token = first.mint("dev-user", 60)
    assert first.user_id(token) == "dev-user"
    with pytest.raises(Unauthorized):
        second.user_id(token)


def test_an_exp_that_is_not_a_number_is_refused() -> None:
    codec = TokenCodec(SECRET)
    token = jwt.encode({"sub": "u", "exp": str(2**40)}, SECRET, "HS256")
    with pytest.raises(Unauthorized, match="exp"):
        codec.user_id(token)
