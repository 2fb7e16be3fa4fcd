"""Opening saved pages in Debian's headless Chromium (driven by Playwright) for the oracle tests.

Every page is opened from a file:// URL in a fresh context with every other request blocked
and recorded; dialogs are dismissed and recorded, and a script error fails the test. Playwright
is imported plainly: the test command installs it, so its absence is an error, not a skip.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def launched() -> Iterator[Browser]:
    """Debian's headless Chromium (never a downloaded browser), closed afterwards."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Opened:
    """A page opened from a file, with what it asked for and what went wrong in it."""

    page: Page
    blocked: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def root(self, index: int = 0) -> Locator:
        """The index-th dictionary on the page."""
        return self.page.locator(".semdict").nth(index)


@contextlib.contextmanager
def opened(browser: Browser, path: Path, javascript: bool = True) -> Iterator[Opened]:
    """Open `path` in a fresh context; every request other than file: and data: is blocked."""
    context = browser.new_context(
        java_script_enabled=javascript, viewport={"width": 1000, "height": 800}
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    result = Opened(page)

    def route(route_request) -> None:
        url = route_request.request.url
        if url.startswith(("file:", "data:")):
            route_request.continue_()
        else:
            result.blocked.append(url)
            route_request.abort()

    def dialog(box) -> None:
        result.dialogs.append(box.message)
        box.dismiss()

    context.route("**/*", route)
    page.on("dialog", dialog)
    page.on("pageerror", lambda error: result.errors.append(str(error)))
    try:
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        yield result
    finally:
        context.close()
    assert not result.errors, result.errors


def cell(root: Locator, row: int, col: int) -> Locator:
    """The grid cell at (row, col)."""
    return root.locator(f'rect[data-row="{row}"][data-col="{col}"]')


def basis_button(root: Locator, index: int) -> Locator:
    """The switch button of basis `index`."""
    return root.locator(f'.sd-basis-button[data-basis-index="{index}"]')


def shown(root: Locator) -> list[tuple[int, np.float32]]:
    """The (channel, value) entries a dictionary shows now, top to bottom."""
    pairs = root.locator(".sd-entry").evaluate_all(
        "es => es.map(e => [e.getAttribute('data-channel'), e.getAttribute('data-value')])"
    )
    return [(int(channel), np.float32(float(value))) for channel, value in pairs]


def selection(root: Locator) -> tuple[int, int, bool]:
    """(row, col, pinned) as the root reports it; checks the outlined cell agrees."""
    row = int(root.get_attribute("data-selected-row"))
    col = int(root.get_attribute("data-selected-col"))
    outlined = root.locator(".sd-cell.sd-selected")
    assert outlined.count() == 1
    assert (outlined.get_attribute("data-row"), outlined.get_attribute("data-col")) == (
        str(row),
        str(col),
    )
    return row, col, root.get_attribute("data-pinned") == "true"


def expected(acts: np.ndarray, k: int, row: int, col: int) -> list[tuple[int, np.float32]]:
    """The top-k at (row, col) by a full stable sort, independently of the package."""
    order = np.argsort(-acts[row, col], kind="stable")[:k]
    return [(int(c), np.float32(acts[row, col, c])) for c in order]
