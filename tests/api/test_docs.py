"""/docs and /redoc work offline: every script, style sheet and icon they reference, and the
OpenAPI document, comes from this server (the swagger-ui and redoc bundles of the
fastapi-offline package), and both pages render in headless Chromium with every request off this
server refused, as on a host without internet."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.api.live import LiveServer, make_settings
from vton.api import create_app
from vton.config import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 60_000
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
"""The one request off the host: redoc's "API docs by Redocly" footer logo, hidden when it fails
to load (redoc 2 has no option to leave it out)."""
REFERENCE = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)["']|url:\s*'([^']+)'""")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """The app without its lifespan (no model is loaded: the docs do not need one)."""
    with_defaults = Settings(_env_file=None)
    yield TestClient(create_app(with_defaults))


def references(html: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(html)]


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png", "openapi.json"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png", "openapi.json"}),
    ],
)
def test_docs_assets_come_from_this_server(
    client: TestClient, page: str, expected: set[str]
) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert "cdn" not in response.text.lower()
    urls = references(response.text)
    assert {url.rsplit("/", 1)[-1] for url in urls} == expected
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{page} references {url} off this host"
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url  # the bundle, not an error page


def test_docs_render_offline(tiny_model_dir: Path, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (scripts/setup.sh installs chromium)")
    from playwright.sync_api import Route, expect, sync_playwright

    settings = make_settings(tiny_model_dir, tmp_path, warmup=False)
    live = LiveServer(settings).start(ready=False)
    off_host: list[str] = []

    def only_this_host(route: Route) -> None:
        if route.request.url.startswith(live.url):
            route.continue_()
        else:
            off_host.append(route.request.url)
            route.abort("internetdisconnected")

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                page.route("**/*", only_this_host)
                with page.expect_response(f"{live.url}/openapi.json") as openapi:
                    page.goto(f"{live.url}/docs")
                assert openapi.value.status == 200
                expect(page.locator(".swagger-ui .info .title")).to_contain_text("vton")
                expect(page.locator(".opblock-summary-path").first).to_be_visible()
                page.goto(f"{live.url}/redoc")
                expect(page.locator("h1").first).to_contain_text("vton")
            finally:
                browser.close()
    finally:
        live.stop()
    assert set(off_host) <= {REDOCLY_LOGO}, off_host
