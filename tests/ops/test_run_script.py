"""``./scripts/run``, the README's first command: it serves the product, and a SIGTERM to it
(what a service manager sends) stops the web server and the worker, not only Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.s3 import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _embedded_env(var: Path, port: int) -> dict[str, str]:
    """This process's environment without the test profile's settings: the script must run
    with its own embedded defaults, in a directory of the test's."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRONGBOX_", "DJANGO_", "Q_CLUSTER"))
        and k not in ("DATABASE_URL", "REDIS_URL")
    }
    return {**keep, "STRONGBOX_VAR_DIR": str(var), "STRONGBOX_PORT": str(port)}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_sigterm_to_the_run_script_stops_the_web_server_and_the_worker(tmp_path):
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        script = subprocess.Popen(
            [str(ROOT / "scripts" / "run")],
            cwd=ROOT,
            env=_embedded_env(tmp_path / "var", port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its group: the web server and the worker are in it
        )
    try:
        deadline = time.monotonic() + 240
        while not _answers(f"http://127.0.0.1:{port}/health/live"):
            assert script.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        output = log.read_text(errors="replace")
        assert (
            "qcluster"
            in subprocess.run(
                ["ps", "-o", "args=", "-s", str(script.pid)], capture_output=True, text=True
            ).stdout
        ), output

        script.send_signal(signal.SIGTERM)  # to the script alone, as systemd's stop does
        assert script.wait(timeout=60) == 143
        deadline = time.monotonic() + 30
        while _group_alive(script.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _group_alive(script.pid), subprocess.run(
            ["ps", "-o", "pid,args", "-s", str(script.pid)], capture_output=True, text=True
        ).stdout
        assert not _answers(f"http://127.0.0.1:{port}/health/live")
    finally:
        if _group_alive(script.pid):
            os.killpg(script.pid, signal.SIGKILL)
        script.wait(timeout=10)
