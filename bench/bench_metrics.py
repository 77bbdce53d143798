"""Benchmark: one /metrics scrape over 10,000 backups (or --backups N).

Creates a throwaway test database (Django's test database of the settings in use: a SQLite
file, or ``test_<name>`` of DATABASE_URL on PostgreSQL), fills it with two organisations,
20 environments of 5 databases each (100 series), N finished backups spread over them (one
in ten failed), a full backup per environment, WAL archivers and open alerts, then times
scrapes through the Django test client (in-process: routing, queries, exposition) in wall
and CPU time (on a shared machine the wall time also counts waiting for a CPU) and counts
their queries. The database is dropped at the end.

Run:  DJANGO_SETTINGS_MODULE=config.settings.test .venv/bin/python bench/bench_metrics.py
      (add DATABASE_URL=postgres://postgres@127.0.0.1:5432/<name> for PostgreSQL)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

ENVIRONMENTS = 20
DATABASES_PER_ENVIRONMENT = 5


def fill(backups: int) -> None:
    from django.utils import timezone

    from alerts.models import Alert
    from backups.models import Backup, WalArchiver
    from organizations.models import Database, Environment, Organisation, Project
    from schedules.models import Schedule

    now = timezone.now()
    organisations = [Organisation.objects.create(name=s, slug=s) for s in ("acme", "globex")]
    databases = []
    for n in range(ENVIRONMENTS):
        organisation = organisations[n % 2]
        project = Project.objects.create(organisation=organisation, name=f"p{n}", slug=f"p{n}")
        environment = Environment.objects.create(project=project, name="prod", slug="prod")
        Schedule.objects.create(environment=environment, db_cron="0 * * * *", wal_enabled=True)
        for d in range(DATABASES_PER_ENVIRONMENT):
            databases.append(
                Database.objects.create(
                    environment=environment,
                    name=f"db{d}",
                    slug=f"db{d}",
                    engine="postgresql",
                    database_name=f"db{d}",
                )
            )
        Alert.objects.create(
            organisation=organisation, kind="backup_failed", dedup_key=f"k{n}", title="failed"
        )
    rows = []
    for n in range(backups):
        database = databases[n % len(databases)]
        finished = now - timedelta(minutes=backups - n)
        rows.append(
            Backup(
                organisation=database.environment.project.organisation,
                environment=database.environment,
                database=database,
                name=f"bench-{uuid.uuid4().hex}",
                kind="database",
                method="logical",
                status="failed" if n % 10 == 0 else "completed",
                size=1000 + n,
                created_at=finished - timedelta(seconds=n % 3600),
                started_at=finished - timedelta(seconds=n % 3600),
                completed_at=finished,
            )
        )
    for environment in Environment.objects.select_related("project"):
        rows.append(
            Backup(
                organisation_id=environment.project.organisation_id,
                environment=environment,
                name=f"bench-full-{uuid.uuid4().hex}",
                kind="full",
                method="logical",
                status="completed",
                size=10**9,
                created_at=now - timedelta(hours=2),
                started_at=now - timedelta(hours=2),
                completed_at=now - timedelta(hours=1),
            )
        )
    Backup.objects.bulk_create(rows, batch_size=1000)
    WalArchiver.objects.bulk_create(
        WalArchiver(database=d, last_archived_wal="1", last_archived_at=now) for d in databases
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backups", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    setup_test_environment()
    settings.ALLOWED_HOSTS = ["testserver"]
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        started = time.perf_counter()
        fill(args.backups)
        print(f"filled {args.backups} backups in {time.perf_counter() - started:.1f} s")
        client = Client()
        timings, cpu = [], []
        for _ in range(args.runs):
            with CaptureQueriesContext(connection) as queries:
                started, started_cpu = time.perf_counter(), time.process_time()
                response = client.get("/metrics")
                timings.append(time.perf_counter() - started)
                cpu.append(time.process_time() - started_cpu)
            assert response.status_code == 200
        print(
            f"{connection.vendor}: {args.backups} backups, {len(response.content)} bytes, "
            f"{len(queries)} queries, median {statistics.median(timings) * 1000:.1f} ms, "
            f"best {min(timings) * 1000:.1f} ms over {args.runs} scrapes; this process's CPU "
            f"(SQLite's queries included, PostgreSQL's not) median "
            f"{statistics.median(cpu) * 1000:.1f} ms"
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
