"""Benchmark: a retention plan for 100,000 hourly backups of one environment (~11 years)
whose database backups are spread over three databases (three series of their own).

Run: .venv/bin/python bench/bench_retention.py [--pure-only] [--db PATH]
(target: well under 1 s per plan)

Two figures, each the best of 5 runs, in wall and CPU time (the target is checked on
CPU time: on a shared machine the wall time also counts waiting for a CPU):

- ``plan_retention``: the pure planner on ready-made ``BackupInfo`` values;
- ``retention_plan_for``: what the preview endpoint and the enforcement task do, from the
  database (a scratch SQLite file, migrated and filled on first use): read the rows, map
  them to ``BackupInfo`` (with the active-restore lookup) and plan.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
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
RUNS = 5


DATABASES = 3


def backup_shapes():
    """(index, created_at, kind, status, manual, database number or None) of each synthetic
    backup, oldest first."""
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


def make_backups() -> list[BackupInfo]:
    return [
        BackupInfo(
            id=f"b{i:06d}",
            created_at=created,
            kind=kind,
            status=status,
            size=50_000_000,
            manual=manual,
            source=database,
        )
        for i, created, kind, status, manual, database in backup_shapes()
    ]


def best_of(label: str, plan_once) -> object:
    timings = []
    cpu = []
    plan = None
    for _ in range(RUNS):
        started, started_cpu = time.perf_counter(), time.process_time()
        plan = plan_once()
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    print(
        f"{label}: best {min(timings):.3f} s, worst {max(timings):.3f} s wall; "
        f"best {min(cpu):.3f} s CPU ({RUNS} runs, load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"  kept {plan.kept_count}, deleted {plan.deleted_count}, "
        f"freed {plan.bytes_freed / 1e9:.1f} GB"
    )
    assert plan.kept_count + plan.deleted_count == COUNT
    # CPU time: on a shared machine the wall time also counts waiting for a CPU.
    assert min(cpu) < 1.0, f"{label} is slower than the 1 s target"
    return plan


def bench_pure() -> None:
    backups = make_backups()
    print(f"{len(backups)} backups from {backups[0].created_at:%Y-%m-%d} to {NOW:%Y-%m-%d}")
    best_of("plan_retention (pure)", lambda: plan_retention(backups, POLICY, "Europe/London", NOW))


def setup_django(db_path: Path) -> None:
    os.environ["STRONGBOX_SQLITE_PATH"] = str(db_path)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ.setdefault("STRONGBOX_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def fill(environment_slug: str) -> object:
    """The environment with COUNT backups, created once per scratch database."""
    from backups.models import Backup
    from organizations.models import Database, Environment, Organisation, Project
    from schedules.models import Schedule

    environment = Environment.objects.filter(slug=environment_slug).first()
    if environment is not None and environment.backups.count() == COUNT:
        return environment
    organisation, _ = Organisation.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    project, _ = Project.objects.get_or_create(
        organisation=organisation, slug="bench", defaults={"name": "Bench"}
    )
    environment, _ = Environment.objects.get_or_create(
        project=project, slug=environment_slug, defaults={"name": "Bench"}
    )
    environment.backups.all().delete()
    databases = [
        Database.objects.get_or_create(
            environment=environment,
            slug=f"db-{n}",
            defaults={"name": f"DB {n}", "engine": "sqlite", "database_name": f"bench-{n}.sqlite3"},
        )[0]
        for n in range(DATABASES)
    ]
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
    print(f"  (filled {COUNT} rows in {time.perf_counter() - started:.1f} s)")
    return environment


def bench_database(db_path: Path) -> None:
    setup_django(db_path)
    from schedules.enforcement import retention_plan_for

    environment = fill("bench-retention-databases")
    print(f"{COUNT} Backup rows in SQLite ({db_path})")
    # The schedule's own policy, as the enforcement task and a preview without a body use.
    best_of(
        "retention_plan_for (database rows -> plan)",
        lambda: retention_plan_for(environment=environment, now=NOW),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pure-only", action="store_true", help="skip the database figure")
    parser.add_argument(
        "--db",
        type=Path,
        default=Path(tempfile.gettempdir()) / "strongbox-bench-retention.sqlite3",
        help="scratch SQLite file (created and filled on first use, reused after)",
    )
    args = parser.parse_args()
    bench_pure()
    if not args.pure_only:
        bench_database(args.db)


if __name__ == "__main__":
    main()
