"""Fixtures for the real-browser tests: the Nobox simulator, the app under daphne and Chromium.

The processes and the browser are shared by all browser tests and started once. They are
package-scoped rather than session-scoped on purpose: between two calls Playwright's sync API
leaves its event loop marked as running in this thread, so while it is alive no asyncio test can
run ("Runner.run() cannot be called from a running event loop"). Package scope stops Playwright
as soon as the last browser test is done, before pytest moves on to the async tests elsewhere in
the suite. (For the browser tests alone it is the same as session scope.)

Each test gets a fresh user (a unique name) and a fresh browser context; on failure the page is
saved as a screenshot in the run's var dir, next to the app's log.

The app process has its own SQLite database under the var dir: these tests never use the
pytest-django database (do not request `db`).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from playwright.sync_api import (
    Error as PlaywrightError,
)

from tests.servers import ON_CI, app_env, app_server, create_user, login, manage, simulator

# The simulator's pace: `sim/markdown` (~100 pieces) streams for ~2.5 s and `sim/long`
# (10 x SIM_REPLY_TOKENS pieces) for ~7.5 s; ordinary models answer SIM_REPLY_TOKENS pieces.
SIM_TOKENS_PER_SECOND = 40
SIM_REPLY_TOKENS = 30

# Milliseconds, for expect(): page loads and socket handshakes, and whole streamed replies.
QUICK = 10_000
STREAM = 30_000

PASSWORD = "browser-test-password"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so fixtures can tell at teardown that it failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


# --- processes (once for all browser tests) -------------------------------------------------


@pytest.fixture(scope="package")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        if ON_CI:
            pytest.fail("chromium is not installed (required on CI for the browser tests)")
        pytest.skip("chromium is not installed")
    return path


@pytest.fixture(scope="package")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="package")
def sim_url(chromium_path: str) -> Iterator[str]:
    with simulator(tokens_per_second=SIM_TOKENS_PER_SECOND, reply_tokens=SIM_REPLY_TOKENS) as url:
        yield url


@pytest.fixture(scope="package")
def env(var_dir: Path, sim_url: str) -> dict[str, str]:
    environment = app_env(var_dir, NOBOX_BASE_URL=sim_url)
    manage(environment, "migrate", "--noinput")
    return environment


@pytest.fixture(scope="package")
def app_url(env: dict[str, str], var_dir: Path) -> Iterator[str]:
    with app_server(env, log_path=var_dir / "app.log") as (url, _proc):
        yield url


@pytest.fixture(scope="package")
def playwright_driver(chromium_path: str) -> Iterator[Playwright]:
    driver = sync_playwright().start()
    try:
        yield driver
    finally:
        driver.stop()


def launch_chromium(driver: Playwright, path: str, *extra_args: str) -> Browser:
    return driver.chromium.launch(executable_path=path, args=[*CHROMIUM_ARGS, *extra_args])


@pytest.fixture(scope="package")
def browser(playwright_driver: Playwright, chromium_path: str) -> Iterator[Browser]:
    chromium = launch_chromium(playwright_driver, chromium_path)
    try:
        yield chromium
    finally:
        chromium.close()


# --- per test -------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    username: str
    password: str
    token: str | None


class Users:
    """Fresh users, each with a unique name, made with tests.servers.create_user.

    Making one takes one or two `manage.py` runs (3-4 s, much more on a busy 2-core machine),
    so the next user with a token is made in the background while a test runs, and one without
    a token is made at the start. Every test still gets a user nobody has used before.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="browser-users")
        self.with_token = self.worker.submit(self.create, True)
        self.without_token: Future[User] | None = self.worker.submit(self.create, False)

    def create(self, with_token: bool) -> User:
        username = f"u-{uuid.uuid4().hex[:12]}"
        token = f"sk-browser-{uuid.uuid4().hex[:16]}" if with_token else None
        create_user(self.env, username, PASSWORD, token)
        return User(username, PASSWORD, token)

    def take(self, with_token: bool) -> User:
        if not with_token:
            made, self.without_token = self.without_token, None
            return made.result() if made is not None else self.create(False)
        user = self.with_token.result()
        self.with_token = self.worker.submit(self.create, True)
        return user

    def close(self) -> None:
        self.worker.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="package")
def users(env: dict[str, str]) -> Iterator[Users]:
    pool = Users(env)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def make_user(users: Users) -> Callable[..., User]:
    """make_user(with_token=False): a new user, with or without a Nobox token."""

    def make(with_token: bool = False) -> User:
        return users.take(with_token)

    return make


@pytest.fixture
def make_staff(env: dict[str, str], make_user: Callable[..., User]) -> Callable[..., User]:
    """make_staff(with_token=False): a new superuser, for the admin's pages."""

    def make(with_token: bool = False) -> User:
        person = make_user(with_token)
        manage(
            env,
            "shell",
            "-c",
            "from chat.models import User; "
            f"User.objects.filter(username={person.username!r})"
            ".update(is_staff=True, is_superuser=True)",
        )
        return person

    return make


@pytest.fixture
def user(users: Users) -> User:
    """A new user who has a Nobox token (one the simulator accepts)."""
    return users.take(with_token=True)


@pytest.fixture
def context(users: Users, browser: Browser, app_url: str) -> Iterator[BrowserContext]:
    ctx = new_context(browser, app_url)
    try:
        yield ctx
    finally:
        ctx.close()


def new_context(browser: Browser, app_url: str, **options: Any) -> BrowserContext:
    """A context as every browser test sees the app (`options`: Playwright's, e.g. permissions)."""
    return browser.new_context(
        base_url=app_url, viewport={"width": 1280, "height": 900}, locale="en-US", **options
    )


@pytest.fixture
def page(request: pytest.FixtureRequest, context: BrowserContext, var_dir: Path) -> Iterator[Page]:
    """A fresh page. Uncaught script errors fail the test; a failed test leaves a screenshot."""
    tab = context.new_page()
    uncaught: list[str] = []
    console: list[str] = []
    tab.on("pageerror", lambda error: uncaught.append(f"{error.name}: {error.message}"))
    tab.on(
        "console",
        lambda msg: (
            console.append(f"{msg.type}: {msg.text}") if msg.type in ("error", "warning") else None
        ),
    )
    tab.on(
        "response",
        lambda response: (
            console.append(f"HTTP {response.status} {response.url}")
            if response.status >= 400
            else None
        ),
    )
    yield tab
    reports = request.node.stash.get(_REPORTS, {})
    if any(report.failed for report in reports.values()):
        shot = var_dir / (re.sub(r"[^\w.-]+", "_", request.node.name) + ".png")
        try:
            tab.screenshot(path=shot, full_page=True)
            print(f"\nscreenshot: {shot}")
        except PlaywrightError as error:
            print(f"\nno screenshot: {error}")
        print(f"page URL: {tab.url}\napp log: {var_dir / 'app.log'}")
        for line in console:
            print(f"console {line}")
        log = var_dir / "app.log"
        if log.exists():
            tail = log.read_text(errors="replace").splitlines()[-40:]
            print("app log, last lines:", *tail, sep="\n  ")
    elif uncaught:
        pytest.fail(f"uncaught errors in the page: {uncaught}")


def sign_in(page: Page, app_url: str, user: User) -> None:
    """Sign in without the form (the form has its own test): the session cookie of a real login."""
    cookies = login(app_url, user.username, user.password)
    page.context.add_cookies(
        [
            {"name": cookie.name, "value": cookie.value or "", "url": app_url}
            for cookie in cookies.jar
        ]
    )


class ChatPage:
    """The chat page as a user sees it, through the hooks the front end promises."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.composer = page.locator("#composer")
        self.model = page.locator("#model")
        self.stop_button = page.locator("#stop")
        self.connection = page.locator("#connection-state")
        self.messages = page.locator("#messages .message")

    def open(self, path: str = "/") -> None:
        self.page.goto(path)
        self.wait_connected()

    def reload(self) -> None:
        self.page.reload()
        self.wait_connected()

    def wait_connected(self) -> None:
        expect(self.connection).to_have_attribute("data-state", "connected", timeout=QUICK)

    def choose_model(self, model: str) -> None:
        """Picks `model` (an id) in the model picker: searched by its id, then clicked. Waits
        for the option, which arrives with the user's model list from /api/models."""
        self.model.click()
        self.model.fill(model)
        self.model_option(model).click(timeout=QUICK)
        self.expect_model(model)

    def model_option(self, model: str) -> Locator:
        """The picker's option for `model` in its provider's group (not under Recently used)."""
        return self.page.locator(
            f'#model-list .model-group:not([data-recent]) [role="option"][data-id="{model}"]'
        )

    def expect_model(self, model: str) -> None:
        """The picker's chosen model is `model` ("" for none)."""
        expect(self.model).to_have_attribute("data-model", model, timeout=QUICK)

    def expect_some_model(self) -> None:
        expect(self.model).not_to_have_attribute("data-model", "", timeout=QUICK)

    def send(self, text: str, model: str | None = None) -> None:
        if model is not None:
            self.choose_model(model)
        self.composer.fill(text)
        self.composer.press("Enter")
        # the draft is cleared on `ack`, i.e. once the message is stored
        expect(self.composer).to_have_value("", timeout=QUICK)

    def by_role(self, role: str) -> Locator:
        return self.page.locator(f'#messages .message[data-role="{role}"]')

    def last_reply(self) -> Locator:
        return self.by_role("assistant").last

    @staticmethod
    def body(message: Locator) -> Locator:
        return message.locator(".message-body")

    def text_of(self, message: Locator) -> str:
        return self.body(message).inner_text()

    def wait_status(self, message: Locator, status: str, timeout: int = STREAM) -> None:
        expect(message).to_have_attribute("data-status", status, timeout=timeout)

    def wait_text_longer_than(self, message: Locator, length: int, timeout: int = STREAM) -> str:
        """Waits until the message's visible text is longer than `length`; returns it."""
        self.body(message).wait_for(state="attached", timeout=timeout)
        handle = self.body(message).element_handle(timeout=timeout)
        assert handle is not None
        self.page.wait_for_function(
            "([el, n]) => el.innerText.length > n", arg=[handle, length], timeout=timeout
        )
        return handle.inner_text()

    def page_data(self) -> dict[str, Any]:
        """What the server rendered into the page (its stored messages, with raw content)."""
        data: dict[str, Any] = json.loads(self.page.locator("#page-data").text_content() or "")
        return data


@pytest.fixture
def chat(page: Page, app_url: str, user: User) -> ChatPage:
    """The chat page of a signed-in user who has a token, connected and ready."""
    sign_in(page, app_url, user)
    chat_page = ChatPage(page)
    chat_page.open("/")
    return chat_page
