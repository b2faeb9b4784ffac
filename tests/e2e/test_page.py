"""The test page in real headless Chromium: register a person from a photo alone and see the
computed masks, register two garments, try both on as one job, watch the progress over
server-sent events, see both result images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.live import LiveServer, garment_image, make_settings
from vton.preprocess.body.standins import demo_person

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (scripts/setup.sh installs chromium)"
)


@pytest.fixture(scope="module")
def page_server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    live = LiveServer(make_settings(tiny_model_dir, tmp_path_factory.mktemp("e2e"))).start()
    yield live
    live.stop()


def test_register_and_try_on_two_garments(page_server: LiveServer, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    files = {name: tmp_path / f"{name}.png" for name in ("person", "garment")}
    demo_person().save(files["person"])
    garment_image().save(files["garment"])
    token = page_server.token("page-user")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{page_server.url}/?token={token}")

            page.set_input_files("#person-file", files["person"])
            page.click("#register-person")
            status = page.locator("#person-status")
            expect(status).to_contain_text("registered: upper_body, lower_body, dresses")
            expect(status).to_contain_text("computed masks and pose")
            shown = page.locator(".person-image img")
            expect(shown).to_have_count(7)  # the DensePose image, a mask and a gray per category
            for i in range(7):
                expect(shown.nth(i)).to_have_js_property("naturalWidth", 768)
            masks = page.locator(".person-image[data-image$='/mask'] img")
            expect(masks).to_have_count(3)

            for clothing_id in ("red", "blue"):
                page.set_input_files("#garment-file", files["garment"])
                page.fill("#garment-id", clothing_id)
                page.click("#register-garment")
                expect(page.locator("#garment-status")).to_have_text(f"registered {clothing_id}")
            expect(page.locator(".garment-check")).to_have_count(2)

            page.locator(".garment-check").nth(0).check()
            page.locator(".garment-check").nth(1).check()
            page.fill("#steps", "3")
            page.click("#tryon")
            expect(page.locator("#progress-text")).to_have_text("succeeded")

            images = page.locator(".result img")
            expect(images).to_have_count(2)
            for i in range(2):
                assert images.nth(i).get_attribute("src").startswith("data:image/png;base64,")
                width = images.nth(i).evaluate("img => img.naturalWidth")
                assert width == 96
            assert page.locator("#progress").evaluate("p => p.value") == 1
        finally:
            browser.close()
