"""The test page in real headless Chromium on the real server (tiny model, 96x128 frames):
registering a person (from a photo alone, or with every category's mask at once) and
garments, a batch with its per-phase timings table, wall time and throughput, the full-size view
and download, cancel, a reload in the middle of a job, clean error text, the keyboard, and a
phone-width layout. Screenshots go to pytest's tmp_path and /tmp/vton-page-shots."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.api.live import (
    WAIT_S,
    garment_image,
    new_user,
    person_images,
    register_garment,
    register_person,
)
from tests.e2e.conftest import GatedServer
from vton.preprocess.body.standins import demo_person

CATEGORIES = ("upper_body", "lower_body", "dresses")
PHASES = ("queue", "artifacts", "encode", "diffusion", "decode", "png", "total")
PHONE = (390, 844)
NumberCell = re.compile(r"^\d+(\.\d)?$")

NewPage = Callable[..., Any]
Screenshot = Callable[[Any, str], Path]


def open_as(page: Any, server: GatedServer, user: str, query: str = "") -> None:
    page.goto(f"{server.live.url}/?token={server.live.token(user)}{query}")


def client_of(server: GatedServer, user: str) -> httpx.Client:
    return server.live.client(user)


def user_with_two_garments(server: GatedServer) -> str:
    """A new user with a registered person and garments "a" and "b"."""
    user = new_user()
    with client_of(server, user) as client:
        register_person(client)
        for clothing_id in ("a", "b"):
            register_garment(client, clothing_id)
    return user


def row_cells(page: Any, index: int) -> dict[str, str]:
    """The results table's row of item `index` (0-based), by column name."""
    return page.locator(f"#results tr[data-index='{index}'] td").evaluate_all(
        "cells => Object.fromEntries(cells.map(c => [c.dataset.label, c.textContent]))"
    )


def count_job_posts(page: Any) -> list[str]:
    """The URLs of every POST /api/jobs the page sends from now on."""
    posts: list[str] = []
    page.on(
        "request",
        lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/api/jobs") else 0,
    )
    return posts


def wait_until_blocked(server: GatedServer) -> None:
    assert server.pipeline.blocked.wait(WAIT_S), "no batch reached the held pipeline"


def test_register_from_a_photo_and_run_a_batch_with_timings(
    gated_server: GatedServer, new_page: NewPage, screenshot: Screenshot, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    photo, garment = tmp_path / "person.png", tmp_path / "garment.png"
    demo_person().save(photo)
    garment_image().save(garment)
    page = new_page()
    open_as(page, gated_server, new_user())
    expect(page.locator("#model-notice")).to_be_visible()
    expect(page.locator("#model-notice")).to_contain_text("noise")
    expect(page.locator("#person-summary")).to_have_text("No person registered yet.")

    page.set_input_files("#person-file", photo)
    page.click("#register-person")
    expect(page.locator("#person-status")).to_have_text("registered: " + ", ".join(CATEGORIES))
    expect(page.locator("#person-summary .categories")).to_have_text(", ".join(CATEGORIES))
    summary = page.locator("#person-summary")
    expect(summary).to_contain_text("masks and pose computed from the photo")
    shown = page.locator(".person-image img")
    expect(shown).to_have_count(2 + 2 * len(CATEGORIES))  # photo, DensePose, mask + gray each
    for i in range(shown.count()):
        expect(shown.nth(i)).to_have_js_property("naturalWidth", 768)

    for clothing_id, category in zip(("shirt", "trousers", "dress"), CATEGORIES, strict=True):
        page.set_input_files("#garment-file", garment)
        page.fill("#garment-id", clothing_id)
        page.select_option("#garment-category", category)
        page.click("#register-garment")
        expect(page.locator("#garment-status")).to_have_text(f"registered {clothing_id}")
    cards = page.locator(".garment")
    expect(cards).to_have_count(3)
    expect(page.locator(".garment[data-clothing-id='trousers'] .category")).to_have_text(
        "lower_body"
    )
    expect(page.locator(".garment img").nth(2)).to_have_js_property("naturalWidth", 768)

    for i in range(3):
        cards.nth(i).locator(".garment-check").check()
    page.fill("#steps", "2")
    page.fill("#guidance", "2.5")
    page.select_option("#scheduler", "euler")
    posts = count_job_posts(page)
    page.dblclick("#tryon")  # a double click makes one job
    expect(page.locator("#progress-text")).to_have_text("succeeded")
    assert len(posts) == 1, posts
    assert re.search(r"[?&]job=\w", page.url), page.url
    expect(page.locator("#tryon")).to_be_enabled()

    rows = page.locator("#results tr")
    expect(rows).to_have_count(3)
    for index in range(3):
        cells = row_cells(page, index)
        assert cells["Status"] == "succeeded"
        for phase in PHASES:
            assert NumberCell.match(cells[f"{phase} ms"]), (phase, cells)
        assert float(cells["diffusion ms"]) > 0 and float(cells["png ms"]) > 0
        assert cells["Batch"] == "3" and cells["Cached"] == "no"
    garments = [row_cells(page, i)["Garment"] for i in range(3)]
    assert garments == ["dress", "shirt", "trousers"]  # the submitted order: the grid's
    summary = page.locator("#summary").text_content()
    assert re.fullmatch(
        r"Job wall time \d+\.\d\d s; 3 of 3 succeeded; \d+\.\d\d try-ons per second", summary
    ), summary
    screenshot(page, "batch-results")

    # full size in a dialog, and a download of the PNG
    page.locator("#results tr[data-index='2'] .thumb").click()
    expect(page.locator("#viewer")).to_be_visible()
    expect(page.locator("#viewer-image")).to_have_js_property("naturalWidth", 96)
    expect(page.locator("#viewer-caption")).to_have_text("try-on of trousers (item 3), 96 x 128 px")
    screenshot(page, "full-size-view")
    with page.expect_download() as download:
        page.click("#viewer-download")
    assert download.value.suggested_filename.endswith("-3-trousers.png")
    saved = tmp_path / "download.png"
    download.value.save_as(saved)
    assert saved.read_bytes().startswith(b"\x89PNG")
    page.keyboard.press("Escape")
    expect(page.locator("#viewer")).to_be_hidden()

    # the same again: every result from the cache
    page.click("#tryon")
    expect(page.locator("#progress-text")).to_have_text("succeeded")
    for index in range(3):
        cells = row_cells(page, index)
        assert cells["Cached"] == "yes" and cells["Batch"] == "–", cells


def test_every_mask_category_registers_at_once(
    gated_server: GatedServer, new_page: NewPage, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    images = person_images()
    for name, image in images.items():
        image.save(tmp_path / f"{name}.png")
    page = new_page()
    open_as(page, gated_server, new_user())
    page.set_input_files("#person-file", tmp_path / "person.png")
    for category in CATEGORIES:
        page.set_input_files(f"#mask-{category}", tmp_path / "mask.png")
    page.set_input_files("#pose-file", tmp_path / "pose.png")
    page.click("#register-person")
    expect(page.locator("#person-summary .categories")).to_have_text(", ".join(CATEGORIES))
    expect(page.locator("#person-summary")).to_contain_text("masks and pose uploaded")
    expect(page.locator(".person-image[data-image$='/mask']")).to_have_count(3)

    page.reload()  # what is registered shows again after a reload
    expect(page.locator("#person-summary .categories")).to_have_text(", ".join(CATEGORIES))


def test_reload_in_the_middle_of_a_job_resumes_it(
    gated_server: GatedServer, new_page: NewPage, screenshot: Screenshot
) -> None:
    from playwright.sync_api import expect

    user = user_with_two_garments(gated_server)
    page = new_page()
    open_as(page, gated_server, user)
    page.locator(".garment-check").nth(0).check()
    page.locator(".garment-check").nth(1).check()
    page.fill("#steps", "2")

    gated_server.pipeline.gate.clear()
    try:
        page.click("#tryon")
        wait_until_blocked(gated_server)
        expect(page.locator("#job-line")).to_contain_text(re.compile("queued|running"))
        expect(page.locator("#tryon")).to_be_disabled()
        job_id = re.search(r"[?&]job=(\w+)", page.url).group(1)

        page.reload()
        expect(page.locator("#job-line")).to_contain_text(f"Job {job_id} (batch): running")
        expect(page.locator("#tryon")).to_be_disabled()
        expect(page.locator("#cancel")).to_be_enabled()
        expect(page.locator("#results tr")).to_have_count(2)
        screenshot(page, "resumed-while-running")
    finally:
        gated_server.pipeline.gate.set()
    expect(page.locator("#progress-text")).to_have_text("succeeded")
    expect(page.locator("#results tr.succeeded")).to_have_count(2)
    assert NumberCell.match(row_cells(page, 1)["diffusion ms"])
    expect(page.locator("#results .thumb img")).to_have_count(2)
    expect(page.locator("#tryon")).to_be_enabled()
    expect(page.locator("#cancel")).to_be_disabled()


def test_cancel_a_job(gated_server: GatedServer, new_page: NewPage) -> None:
    """The page's job waits behind another one holding the worker, and is cancelled there."""
    from playwright.sync_api import expect

    user = user_with_two_garments(gated_server)
    with client_of(gated_server, user) as client:
        page = new_page()
        open_as(page, gated_server, user)
        page.locator(".garment-check").nth(0).check()
        page.locator(".garment-check").nth(1).check()
        page.fill("#steps", "2")

        gated_server.pipeline.gate.clear()
        try:
            blocker = client.post("/api/jobs", json={"type": "single", "clothingId": "a"})
            assert blocker.status_code == 202, blocker.text
            wait_until_blocked(gated_server)
            page.fill("#seed", "7")  # not the blocker's try-on: no result to share
            page.click("#tryon")
            expect(page.locator("#job-line")).to_contain_text("queued")
            page.click("#cancel")
            expect(page.locator("#progress-text")).to_have_text("cancelled")
            expect(page.locator("#progress-text")).to_have_class(re.compile("error"))
            expect(page.locator("#tryon")).to_be_enabled()
            expect(page.locator("#results tr.cancelled")).to_have_count(2)
            assert row_cells(page, 0)["diffusion ms"] == "–"
            expect(page.locator("#summary")).to_contain_text("0 of 2 succeeded")
        finally:
            gated_server.pipeline.gate.set()


def test_errors_show_the_api_message(gated_server: GatedServer, new_page: NewPage) -> None:
    from playwright.sync_api import expect

    user = new_user()
    with client_of(gated_server, user) as client:
        register_person(client)
        register_garment(client, "a")
    page = new_page()

    status = page.locator("#progress-text")
    for named in ("&job=0123456789abcdef", "#job=0123456789abcdef"):  # no such job
        open_as(page, gated_server, user, named)
        expect(status).to_have_text(re.compile(r"^NotRegistered: .*job"))
        expect(page.locator("#tryon")).to_be_enabled()

    page.locator(".garment-check").check()
    page.fill("#steps", "0")
    page.click("#tryon")
    expect(status).to_have_text(re.compile(r"^InvalidInput: (single\.)?denoiseSteps: .* 1$"))
    texts = [status.text_content()]

    page.click("#register-garment")  # no file chosen
    expect(page.locator("#garment-status")).to_have_text("choose a file for Photo")

    page.fill("#token", "not-a-token")
    page.dispatch_event("#token", "change")
    expect(page.locator("#person-summary")).to_have_text(re.compile(r"^Unauthorized: "))
    texts.append(page.locator("#person-summary").text_content())
    for text in texts:
        assert "[object" not in text and "{" not in text and "Error(" not in text, text


def test_keyboard_alone_runs_a_try_on(gated_server: GatedServer, new_page: NewPage) -> None:
    from playwright.sync_api import expect

    user = new_user()
    with client_of(gated_server, user) as client:
        register_person(client)
        register_garment(client, "a")
    page = new_page()
    open_as(page, gated_server, user)
    expect(page.locator(".garment-check")).to_have_count(1)
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, button')].filter(
            e => !e.labels?.length && !e.getAttribute('aria-label') && !e.textContent.trim()
        ).map(e => e.id || e.outerHTML)"""
    )
    assert unlabelled == []

    # Tab goes through the controls in the page's order, skipping the disabled Cancel
    page.focus("#fit")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "tryon"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") != "cancel"

    page.focus(".garment-check")
    page.keyboard.press("Space")
    expect(page.locator(".garment-check")).to_be_checked()
    page.fill("#steps", "2")
    page.focus("#tryon")
    page.keyboard.press("Enter")
    expect(page.locator("#progress-text")).to_have_text("succeeded")
    page.focus("#results .thumb")
    page.keyboard.press("Enter")
    expect(page.locator("#viewer")).to_be_visible()
    assert page.evaluate("document.activeElement.id") == "viewer-close"
    page.keyboard.press("Space")
    expect(page.locator("#viewer")).to_be_hidden()
    assert page.evaluate("document.activeElement.className") == "thumb"


def test_phone_width_has_no_horizontal_scroll(
    gated_server: GatedServer, new_page: NewPage, screenshot: Screenshot
) -> None:
    from playwright.sync_api import expect

    user = user_with_two_garments(gated_server)
    page = new_page(*PHONE)
    open_as(page, gated_server, user)
    expect(page.locator(".garment-check")).to_have_count(2)
    for check in page.locator(".garment-check").all():
        check.check()
    page.fill("#steps", "2")
    page.click("#tryon")
    expect(page.locator("#progress-text")).to_have_text("succeeded")
    expect(page.locator("#results .thumb img")).to_have_count(2)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE[0], f"the page is {width} px wide at {PHONE[0]} px"
    # the table is one card per item: each cell says its column
    assert (
        page.locator("#results td[data-label='diffusion ms']").first.evaluate(
            "td => getComputedStyle(td, '::before').content"
        )
        == '"diffusion ms"'
    )
    screenshot(page, "phone-390px")


def test_a_result_image_comes_from_its_url_else_its_base64(
    gated_server: GatedServer, new_page: NewPage
) -> None:
    """results.js's imageSource: an item's imageUrl fetched with the token (here answered by the
    browser with a JPEG), else a data: URI of its base64."""
    page = new_page()
    open_as(page, gated_server, new_user())
    sent: list[str | None] = []

    def answer(route: Any) -> None:
        sent.append(route.request.headers.get("authorization"))
        route.fulfill(status=200, content_type="image/jpeg", body=b"\xff\xd8\xff\xe0 a jpeg")

    page.route("**/api/jobs/some-job/results/0", answer)
    sources = page.evaluate(
        """async () => {
            const { imageSource } = await import("/static/results.js");
            const png = "iVBORw0KGgoAAAANSUhEUg==";
            return [
                await imageSource({ imageUrl: "/api/jobs/some-job/results/0", image: png }),
                await imageSource({ image: png }),
                await imageSource({ state: "running" }),
            ];
        }"""
    )
    assert sources[0]["src"].startswith("blob:") and sources[0]["type"] == "image/jpeg"
    assert sent == [f"Bearer {page.input_value('#token')}"]
    assert sources[1] == {
        "src": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==",
        "type": "image/png",
    }
    assert sources[2] is None


def test_a_recent_job_shows_from_the_job_list(gated_server: GatedServer, new_page: NewPage) -> None:
    """The list of GET /api/jobs (answered here by the browser, in the jobs API's JobList
    shape, naming a real job): Show loads that job's results."""
    from playwright.sync_api import expect

    user = new_user()
    with client_of(gated_server, user) as client:
        register_person(client)
        register_garment(client, "a")
        job = client.post("/api/jobs", json={"type": "single", "clothingId": "a", "seed": 3})
        assert job.status_code == 202, job.text
        job_id = job.json()["jobId"]
        deadline = time.monotonic() + WAIT_S
        while (status := client.get(f"/api/jobs/{job_id}").json())["state"] != "succeeded":
            assert status["state"] in ("queued", "running"), status
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
    listed = {key: status[key] for key in ("jobId", "type", "state", "createdAt")}
    page = new_page()
    page.route(
        lambda url: url.endswith("/api/jobs?limit=10"),
        lambda route: route.fulfill(json={"jobs": [{**listed, "results": []}]}),
    )
    open_as(page, gated_server, user)
    expect(page.locator("#jobs li")).to_have_count(1)
    expect(page.locator("#jobs li")).to_contain_text(f"{job_id} single, succeeded")
    page.get_by_role("button", name=f"show job {job_id}").click()
    expect(page.locator("#job-line")).to_have_text(f"Job {job_id} (single): succeeded")
    expect(page.locator("#results tr.succeeded")).to_have_count(1)
    expect(page.locator("#results .thumb img")).to_have_count(1)
    assert f"job={job_id}" in page.url
