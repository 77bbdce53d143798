"""Benchmark: the retention preview endpoint over 100,000 backups of one environment (~11
years of hourly backups, its database backups spread over three databases, one copy
each), on SQLite and on PostgreSQL, against the plan alone.

Run: .venv/bin/python bench/bench_retention.py [--backend sqlite|postgresql|both] [--runs 5]
    [--enforce]
Target: every page of the preview under 1 s, under 150 MB of extra RSS.

Each step runs in a fresh child process (its own Django settings, a clean RSS): filling,
measuring the preview, and with ``--enforce`` enforcement. SQLite uses a scratch file,
filled on first use and reused after (``--db``); PostgreSQL a throwaway database
``sbx_bench_retention`` on 127.0.0.1:5432, created, filled and dropped by the run.

The endpoint is timed as a client sees it: a live HTTP request (``POST
…/backup-schedule/retention-preview`` with a bearer token) to a WSGI server running in a
thread of the bench process, so routing, auth, the plan, the page's rows, serialisation
and JSON rendering are all in it. Per run, interleaved so a change in the machine's load
hits every figure alike:

- the baseline, ``plan_retention`` alone on ready-made ``BackupInfo`` values;
- ``retention_plan_for``: the rows read from the database and planned (no page);
- the endpoint's first page (default ``limit``, 100), its last page (``offset`` 99,900)
  and a full page of 1,000 from the middle.

Medians of the runs are printed with their ratio to the baseline, the queries each
request made, its extra peak RSS (the process's high-water mark reset before it, through
``/proc/self/clear_refs``) and the response size, and the load average before and after;
then the first request of the process on its own. Enforcement of the same history runs
once (it deletes ~99% of it), measured the same way.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schedules.retention import BackupInfo, RetentionPolicy, plan_retention  # noqa: E402

COUNT = 100_000
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
POLICY = RetentionPolicy(
    retain_hourly=24,
    retain_daily=7,
    retain_weekly=4,
    retain_monthly=12,
    retain_full_hourly=0,
    retain_full_daily=14,
    retain_monthly_days=400,
)
DATABASES = 3
PG = "postgres://postgres@127.0.0.1:5432"
PG_NAME = "sbx_bench_retention"
TARGET_SECONDS = 1.0
TARGET_EXTRA_RSS_MB = 150


def backup_shapes():
    """(index, created_at, kind, status, manual, database number or None) of each synthetic
    backup, hourly, oldest first, the newest an hour before ``NOW``."""
    start = NOW - timedelta(hours=COUNT)
    for i in range(COUNT):
        # Mostly database backups, each hour of another database, a full one every night,
        # the odd failure and manual one.
        kind = "full" if i % 24 == 2 else "database"
        yield (
            i,
            start + timedelta(hours=i),
            kind,
            "failed" if i % 97 == 0 else "completed",
            i % 500 == 0,
            i % DATABASES if kind == "database" else None,
        )


def make_infos() -> list[BackupInfo]:
    return [
        BackupInfo(
            id=str(uuid.UUID(int=i)),
            created_at=created,
            kind=kind,
            status=status,
            size=50_000_000,
            manual=manual,
            source=None if database is None else f"db-{database}",
        )
        for i, created, kind, status, manual, database in backup_shapes()
    ]


# --- the child: one backend -----------------------------------------------------------------


def rss_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


class Probe:
    """Time, queries and extra peak RSS of one call (queries counted on every thread)."""

    def __init__(self) -> None:
        self.queries = 0
        self.lock = threading.Lock()

    def count(self, execute, sql, params, many, context):
        with self.lock:
            self.queries += 1
        return execute(sql, params, many, context)

    def measure(self, call):
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current RSS
        before = rss_kb("VmRSS")
        queries = self.queries
        from django.db import connection

        started, cpu = time.perf_counter(), time.process_time()
        with connection.execute_wrapper(self.count):  # this thread's; the server's has its own
            result = call()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        extra_mb = (rss_kb("VmHWM") - before) / 1024
        return result, {
            "wall": wall,
            "cpu": cpu,
            "queries": self.queries - queries,
            "rss": extra_mb,
        }


def setup_django(backend: str, db_path: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["STRONGBOX_LOG_LEVEL"] = "WARNING"
    if backend == "postgresql":
        os.environ["DATABASE_URL"] = f"{PG}/{PG_NAME}"
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ["STRONGBOX_SQLITE_PATH"] = str(db_path)
    import django

    django.setup()
    logging.getLogger("schedules.enforcement").setLevel(logging.WARNING)
    logging.getLogger("django-q").setLevel(logging.WARNING)


def pg_database(action: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")
        if action == "create":
            conn.execute(f"CREATE DATABASE {PG_NAME}")


def fill():
    """The environment with COUNT backups and one copy each; made once per scratch
    database, and again after enforcement deleted most of it."""
    from django.core.management import call_command
    from django.db import connection
    from django_q.models import OrmQ

    from backups.models import Backup, BackupCopy
    from destinations.models import Destination
    from organizations.models import Database, Environment, Organisation, Project
    from schedules.models import Schedule

    call_command("migrate", verbosity=0)
    organisation, _ = Organisation.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    project, _ = Project.objects.get_or_create(
        organisation=organisation, slug="bench", defaults={"name": "Bench"}
    )
    environment, _ = Environment.objects.get_or_create(
        project=project, slug="bench-retention", defaults={"name": "Bench"}
    )
    databases = [
        Database.objects.get_or_create(
            environment=environment,
            slug=f"db-{n}",
            defaults={"name": f"DB {n}", "engine": "sqlite", "database_name": f"b-{n}.sqlite3"},
        )[0]
        for n in range(DATABASES)
    ]
    destination, _ = Destination.objects.get_or_create(
        organisation=organisation, name="Disk", defaults={"kind": "local", "config": {}}
    )
    Schedule.objects.update_or_create(
        environment=environment,
        defaults={
            "timezone": "Europe/London",
            **{
                name: getattr(POLICY, name)
                for name in (
                    "retain_hourly",
                    "retain_daily",
                    "retain_weekly",
                    "retain_monthly",
                    "retain_full_hourly",
                    "retain_full_daily",
                    "retain_monthly_days",
                )
            },
        },
    )
    intact = environment.backups.filter(status__in=["completed", "failed"]).count() == COUNT
    if not intact:
        # After an enforcement run: the history again, from scratch (in SQL: the ORM's
        # delete would load 200,000 rows to cascade).
        with connection.cursor() as cursor:
            backups = "SELECT id FROM backups_backup WHERE environment_id = %s"
            cursor.execute(
                f"DELETE FROM backups_backupcopy WHERE backup_id IN ({backups})",  # noqa: S608
                [environment.pk.hex if connection.vendor == "sqlite" else environment.pk],
            )
            cursor.execute(
                "DELETE FROM backups_backup WHERE environment_id = %s",
                [environment.pk.hex if connection.vendor == "sqlite" else environment.pk],
            )
        OrmQ.objects.all().delete()
        started = time.perf_counter()
        rows = [
            Backup(
                id=uuid.uuid4(),
                organisation=organisation,
                environment=environment,
                database=None if database is None else databases[database],
                name=f"bench-{i:06d}",
                kind=kind,
                method="logical",
                status=status,
                trigger="manual" if manual else "scheduled",
                size=50_000_000,
                created_at=created,
                completed_at=created,
            )
            for i, created, kind, status, manual, database in backup_shapes()
        ]
        Backup.objects.bulk_create(rows, batch_size=2000)
        BackupCopy.objects.bulk_create(
            (
                BackupCopy(
                    backup=backup,
                    destination=destination,
                    key=f"bench/{backup.name}.zst",
                    status="stored",
                    size=50_000_000,
                    backup_created_at=backup.created_at,
                )
                for backup in rows
            ),
            batch_size=2000,
        )
        del rows
        print(f"  (filled {COUNT:,} backups and copies in {time.perf_counter() - started:.1f} s)")


def bench_environment():
    from organizations.models import Environment, Role
    from organizations.services import api_token_create

    environment = Environment.objects.select_related("project__organisation").get(
        slug="bench-retention"
    )
    organisation = environment.project.organisation
    _, token = api_token_create(organisation=organisation, name="bench", role=Role.VIEWER)
    return environment, token


def serve(probe: Probe) -> str:
    """A WSGI server on a free loopback port in a daemon thread; returns its base URL."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from django.core.wsgi import get_wsgi_application
    from django.db import connection

    django_app = get_wsgi_application()

    def app(environ, start_response):
        # Queries of the request thread, wherever they come from (auth, view, page).
        with connection.execute_wrapper(probe.count):
            return django_app(environ, start_response)

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, app, WSGIServer, QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


def post(base: str, path: str, token: str) -> bytes:
    """A POST of ``{}`` to the bench's own loopback server, as a client sends it."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        connection.request(
            "POST",
            path,
            body=b"{}",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, (response.status, body[:200])
        return body
    finally:
        connection.close()


def child(step: str, backend: str, runs: int, db_path: Path) -> None:
    setup_django(backend, db_path)
    if step == "fill":
        fill()
    elif step == "measure":
        run_backend(backend, runs)
    else:
        run_enforcement(backend)


def run_backend(backend: str, runs: int) -> None:
    from schedules.enforcement import retention_plan_for

    environment, token = bench_environment()
    probe = Probe()
    base = serve(probe)
    url = f"/api/environments/{environment.id}/backup-schedule/retention-preview"
    infos: list[BackupInfo] = []
    cases = {
        "plan_retention alone (baseline)": lambda: plan_retention(
            infos, POLICY, "Europe/London", NOW
        ),
        "retention_plan_for (rows -> plan)": lambda: retention_plan_for(
            environment=environment, now=NOW
        ),
        "endpoint, first page (100)": lambda: post(base, url, token),
        "endpoint, last page (offset 99,900)": lambda: post(base, f"{url}?offset=99900", token),
        "endpoint, 1,000 from the middle": lambda: post(
            base, f"{url}?limit=1000&offset=50000", token
        ),
    }
    # The first request of a fresh process (imports, URL resolver, connection), measured
    # from before the baseline's values exist: the growth a new worker would see.
    first, first_sample = probe.measure(lambda: post(base, url, token))
    assert json.loads(first)["count"] == COUNT
    infos = make_infos()
    load_before = os.getloadavg()
    samples: dict[str, list[dict]] = {label: [] for label in cases}
    sizes: dict[str, int] = {}
    for _ in range(runs):
        for label, call in cases.items():
            result, sample = probe.measure(call)
            samples[label].append(sample)
            if isinstance(result, bytes):
                sizes[label] = len(result)
    load_after = os.getloadavg()

    print(
        f"\n{backend}: {COUNT:,} backups of one environment, median of {runs} interleaved "
        f"runs; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    header = f"{'':<38} {'wall s':>7} {'CPU s':>6} {'x plan':>7} {'queries':>8} {'+RSS MB':>8}"
    print(header + f" {'response':>9}")
    baseline = statistics.median(s["wall"] for s in samples["plan_retention alone (baseline)"])
    missed = []
    for label, measured in samples.items():
        wall = statistics.median(s["wall"] for s in measured)
        cpu = statistics.median(s["cpu"] for s in measured)
        queries = sorted({s["queries"] for s in measured})
        rss = max(s["rss"] for s in measured)
        size = f"{sizes[label] / 1024:.0f} KB" if label in sizes else ""
        print(
            f"{label:<38} {wall:>7.3f} {cpu:>6.3f} {wall / baseline:>6.1f}x "
            f"{'/'.join(map(str, queries)):>8} {rss:>8.1f} {size:>9}"
        )
        if label.startswith("endpoint") and (wall >= TARGET_SECONDS or rss >= TARGET_EXTRA_RSS_MB):
            missed.append(label)
    print(
        f"{'first request of the process':<38} {first_sample['wall']:>7.3f} "
        f"{first_sample['cpu']:>6.3f} {'':>7} {first_sample['queries']:>8} "
        f"{first_sample['rss']:>8.1f}"
    )
    if missed:
        print(f"over the target (< {TARGET_SECONDS} s, < {TARGET_EXTRA_RSS_MB} MB): {missed}")


def run_enforcement(backend: str) -> None:
    """Enforcement of the whole history once, in a fresh process (it deletes ~99% of it:
    the next run fills the scratch database again)."""
    from django_q.models import OrmQ

    from schedules.enforcement import retention_enforce

    environment, _ = bench_environment()
    probe = Probe()
    tasks_before = OrmQ.objects.count()
    removed, sample = probe.measure(lambda: len(retention_enforce(environment=environment)))
    tasks = OrmQ.objects.count() - tasks_before
    print(
        f"{backend}: enforcement marked {removed:,} backups deleting in {sample['wall']:.1f} s "
        f"({sample['cpu']:.1f} s CPU), {sample['queries']} queries, {tasks} cleanup tasks, "
        f"+{sample['rss']:.0f} MB RSS; load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--db",
        type=Path,
        default=Path(tempfile.gettempdir()) / "strongbox-bench-retention-v2.sqlite3",
        help="scratch SQLite file (created and filled on first use, reused after)",
    )
    parser.add_argument("--child", choices=["fill", "measure", "enforce"], help=argparse.SUPPRESS)
    parser.add_argument("--enforce", action="store_true", help="also time enforcement")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.backend, args.runs, args.db)
        return
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        steps = ["fill", "measure"] + (["enforce"] if args.enforce else [])
        if backend == "postgresql":
            pg_database("create")
        try:
            for step in steps:
                command = [sys.executable, __file__, "--child", step, "--backend", backend]
                command += ["--runs", str(args.runs), "--db", str(args.db)]
                subprocess.run(command, check=True)
        finally:
            if backend == "postgresql":
                pg_database("drop")


if __name__ == "__main__":
    main()
