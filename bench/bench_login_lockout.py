"""Benchmark: what a wrong password costs the server, and what a locked-out try costs.

Runs the embedded profile (Django's default PBKDF2 hasher, not the tests' MD5) on a
throwaway SQLite database, in-process through the Django test client, and measures the CPU
time (``time.process_time``) and wall time of each sign-in: the wrong passwords up to the
lockout, then tries with the right password while locked out, on ``/api/auth/token`` and
on ``/login/``.

Run: .venv/bin/python bench/bench_login_lockout.py [--tries 10]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RIGHT = "right-password"  # noqa: S105 - a throwaway user of a throwaway database
sys.path.insert(0, str(ROOT))


def _timed(call) -> tuple[float, float, int]:
    cpu, wall = time.process_time(), time.perf_counter()
    status = call().status_code
    return time.process_time() - cpu, time.perf_counter() - wall, status


def _report(name: str, rows: list[tuple[float, float, int]]) -> None:
    cpu = statistics.median(r[0] for r in rows) * 1000
    wall = statistics.median(r[1] for r in rows) * 1000
    statuses = sorted({r[2] for r in rows})
    print(f"{name:<44} median CPU {cpu:7.1f} ms  wall {wall:7.1f} ms  statuses {statuses}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tries", type=int, default=10, help="locked-out tries per endpoint")
    args = parser.parse_args()

    var = tempfile.mkdtemp(prefix="sbx-bench-lockout-")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        STRONGBOX_VAR_DIR=var,
        STRONGBOX_SQLITE_PATH=str(Path(var) / "bench.sqlite3"),
    )
    import django

    django.setup()
    logging.disable(logging.WARNING)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    setup_test_environment()  # the test client's hosts
    call_command("migrate", verbosity=0)
    get_user_model().objects.create_user("owner", password=RIGHT)
    limit = settings.AXES_FAILURE_LIMIT
    print(f"hasher {settings.PASSWORD_HASHERS[0].rsplit('.', 1)[-1]}, lockout after {limit}")

    def token(password, address):
        client = APIClient(REMOTE_ADDR=address)
        body = {"username": "owner", "password": password}
        return lambda: client.post("/api/auth/token", body, format="json")

    def form(password, address):
        body = {"username": "owner", "password": password}
        return lambda: Client(REMOTE_ADDR=address).post("/login/", body)

    try:
        _measure(token, form, limit, args.tries)
    finally:
        shutil.rmtree(var, ignore_errors=True)


def _measure(token, form, limit: int, tries: int) -> None:
    for name, endpoint, address in (
        ("/api/auth/token", token, "192.0.2.1"),
        ("/login/", form, "192.0.2.2"),
    ):
        wrong = [_timed(endpoint("wrong", address)) for _ in range(limit)]
        locked = [_timed(endpoint(RIGHT, address)) for _ in range(tries)]
        _report(f"{name} wrong password (until locked)", wrong)
        _report(f"{name} right password while locked out", locked)


if __name__ == "__main__":
    main()
