"""Browser tests: Debian's Chromium driven by Playwright against a live Strongbox.

The application runs as it does in production: uvicorn serving ``config.asgi`` (so the
SSE progress streams really stream) and a django-q2 worker (``manage.py qcluster``)
running the backups. Both are subprocesses sharing the test database file
(``STRONGBOX_TEST_SQLITE``); tests use ``transactional_db`` so they see committed rows.
Nothing is downloaded: the browser is ``/usr/bin/chromium``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from organizations.models import Role
from tests import factories
from tests.fixtures.worker import child_database_env

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "password"  # tests.factories.UserFactory's


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """Stop a server we started, with the children it started (its own process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early; see {log}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own loopback server
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer {url} within {timeout}s; see {log}")


@pytest.fixture(scope="session")
def chromium_path():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package (scripts/setup does)."
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def server_env(tmp_path_factory, django_db_setup):
    """The environment of the server and worker processes, with collected static files."""
    var = tmp_path_factory.mktemp("ui-var")
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        **child_database_env(),
        "STRONGBOX_VAR_DIR": str(var),
        "STRONGBOX_LOCAL_DESTINATION_ROOT": str(var / "artifacts"),
        "STRONGBOX_SERVE_STATIC": "1",
        "DJANGO_DEBUG": "0",
        "STRONGBOX_WORKERS": "2",
        "PYTHONUNBUFFERED": "1",
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return env


@pytest.fixture(scope="session")
def live_app(chromium_path, server_env, django_db_setup, django_db_blocker):
    """Base URL of uvicorn + a real django-q2 worker on the test database."""
    logs = ARTIFACTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    processes = []
    try:
        for name, argv in (
            (
                "uvicorn",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "config.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
            ),
            ("qcluster", [sys.executable, "manage.py", "qcluster"]),
        ):
            log = logs / f"{name}.log"
            process = subprocess.Popen(  # noqa: S603 - fixed argv
                argv,
                cwd=ROOT,
                env=server_env,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            processes.append(process)
            if name == "uvicorn":
                _wait_until_up(f"http://127.0.0.1:{port}/login/", process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        for process in processes:
            _stop(process)


@pytest.fixture(scope="session")
def browser(chromium_path, live_app):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the tests' own ORM calls
    # (factories, assertions) are synchronous and safe, so tell Django not to refuse them.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
            if previous is None:
                os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
            else:
                os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_app, transactional_db):
    context = browser.new_context(base_url=live_app, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def screenshot():
    """screenshot(page, name): a full-page PNG in test-artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, *, phone: bool = False) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        if phone:
            size = page.viewport_size
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=str(path), full_page=True)
            page.set_viewport_size(size)
        else:
            page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def ui_org(transactional_db):
    """An organisation with an admin, an operator and a viewer (password "password")."""
    organisation = factories.OrganisationFactory(name="Quant Gov", slug="quant-gov")
    people = {}
    for role in (Role.ADMIN, Role.OPERATOR, Role.VIEWER):
        user = factories.UserFactory(username=f"{role}-user")
        factories.MembershipFactory(user=user, organisation=organisation, role=role)
        people[role] = user
    return organisation, people


@pytest.fixture
def sign_in():
    def go(page, username: str, password: str = PASSWORD) -> None:
        page.goto("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/")

    return go
