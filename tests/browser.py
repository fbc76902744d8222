"""Pages of the dashboard in a real headless Chromium: a page signed in as someone, whose
console errors are kept for the test to check."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.system import System

CHROMIUM = "/usr/bin/chromium"


@dataclass
class Session:
    page: Page
    errors: list[str] = field(default_factory=list)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (never a browser Playwright
    downloads)."""
    if shutil.which("chromium") is None and not shutil.which(CHROMIUM):
        pytest.fail("Debian's chromium is needed for the browser tests: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


def open_page(browser: Browser, width: int = 1280) -> Session:
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(15_000)
    session = Session(context.new_page())

    def logged(message: ConsoleMessage) -> None:
        if message.type == "error":
            session.errors.append(message.text)

    session.page.on("console", logged)
    session.page.on("pageerror", lambda error: session.errors.append(str(error)))
    return session


def signed_in(
    browser: Browser, system: System, customer: str, role: str = "admin", width: int = 1280
) -> tuple[Session, Page]:
    """A new page signed in as `role` of `customer`, on the overview."""
    session = open_page(browser, width)
    return session, sign_in(session, system, system.token(customer, role))


def sign_in(session: Session, system: System, token: str) -> Page:
    page = session.page
    page.goto(system.gateway_url + "/")
    page.get_by_label("Bearer token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()
    return page


def go(page: Page, section: str) -> None:
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=section).click()
    expect(page.get_by_role("heading", level=1, name=section)).to_be_visible()
