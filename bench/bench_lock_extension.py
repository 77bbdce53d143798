"""Benchmark: extending the S3 Object Locks of 20,000 copies after a policy change.

Run: .venv/bin/python bench/bench_lock_extension.py [--count N] [--db PATH]
(with DATABASE_URL=postgres://... it runs on PostgreSQL instead of a scratch SQLite file)

One environment with N hourly scheduled backups, each with one stored copy locked for a
day in an object-lock bucket of moto's S3 server (started on loopback, as the tests do).
The policy then keeps every backup 3,000 days: every lock must move. Reported, in wall
time: the plan, the candidate read, the whole ``locks_extend`` (N PutObjectRetention
calls on EXTEND_THREADS threads, then the batched UPDATE), and that UPDATE on its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def setup_django(db_path: Path) -> None:
    if not os.environ.get("DATABASE_URL"):
        os.environ["STRONGBOX_SQLITE_PATH"] = str(db_path)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ.setdefault("STRONGBOX_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def timed(label: str, work):
    started = time.perf_counter()
    result = work()
    print(f"{label}: {time.perf_counter() - started:.2f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument(
        "--database-only",
        action="store_true",
        help="no objects and no S3 calls: the plan, the candidate read and the UPDATE only",
    )
    parser.add_argument(
        "--db", type=Path, default=Path(tempfile.gettempdir()) / "strongbox-bench-locks.sqlite3"
    )
    args = parser.parse_args()
    setup_django(args.db)

    from django.utils import timezone

    from backups.models import Backup, BackupCopy
    from destinations.backends import backend_for
    from destinations.models import Destination
    from organizations.models import Environment, Organisation, Project
    from schedules.enforcement import retention_plan_for
    from schedules.locks import EXTEND_THREADS, _extensions, locks_extend, write_locked_until
    from schedules.models import Schedule
    from tests.fixtures.s3 import MotoServer, free_port, s3_destination_config

    server = MotoServer(free_port())
    server.start()
    try:
        bucket = f"bench-lock-{uuid.uuid4().hex[:8]}"
        client = server.client()
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        suffix = uuid.uuid4().hex[:8]
        organisation = Organisation.objects.create(name="Bench", slug=f"bench-{suffix}")
        project = Project.objects.create(organisation=organisation, name="B", slug="b")
        environment = Environment.objects.create(project=project, name="B", slug="b")
        config, secrets = s3_destination_config(server, bucket)
        destination = Destination.objects.create(
            organisation=organisation,
            name="Vault",
            kind="s3",
            config={**config, "object_lock_mode": "governance"},
            secrets=secrets,
        )
        schedule = Schedule.objects.create(
            environment=environment, db_cron="0 * * * *", retain_hourly_days=1
        )
        now = timezone.now()
        locked_until = now + timedelta(days=1)
        backups = [
            Backup(
                id=uuid.uuid4(),
                organisation=organisation,
                environment=environment,
                name=f"bench-{suffix}-{i:06d}",
                kind="full",
                method="logical",
                status="completed",
                trigger="scheduled",
                schedule=schedule,
                size=1000,
                created_at=now - timedelta(hours=args.count - i),
            )
            for i in range(args.count)
        ]
        backend = backend_for(destination)
        store = backend.store
        copies = [
            BackupCopy(
                backup=b,
                destination=destination,
                key=f"bench/{b.name}.zst",
                status="stored",
                size=1000,
                file_exists=True,
                locked_until=locked_until,
                backup_created_at=b.created_at,
            )
            for b in backups
        ]

        def put(copy):
            client.put_object(
                Bucket=bucket,
                Key=store._normalize_name(copy.key),
                Body=b"x" * 1000,
                ObjectLockMode="GOVERNANCE",
                ObjectLockRetainUntilDate=locked_until,
            )

        def fill():
            Backup.objects.bulk_create(backups, batch_size=2000)
            BackupCopy.objects.bulk_create(copies, batch_size=2000)
            if not args.database_only:
                with ThreadPoolExecutor(max_workers=8) as pool:
                    list(pool.map(put, copies))

        timed(f"fill: {args.count} backups, copies and locked objects", fill)

        schedule.retain_hourly_days = 3000  # the policy change: every backup kept longer
        schedule.save()
        plan = timed("plan", lambda: retention_plan_for(environment=environment))
        pending = timed("candidates (one query)", lambda: _extensions(environment, plan))
        print(f"  {len(pending)} locks to extend")
        if not args.database_only:
            changed = timed(
                f"locks_extend ({EXTEND_THREADS} threads of PutObjectRetention + UPDATE)",
                lambda: locks_extend(environment=environment, plan=plan),
            )
            assert changed == args.count, changed
            sample = copies[len(copies) // 2]
            head = client.head_object(Bucket=bucket, Key=store._normalize_name(sample.key))
            expected = BackupCopy.objects.get(pk=sample.pk).locked_until
            assert head["ObjectLockRetainUntilDate"].replace(microsecond=0) == expected.replace(
                microsecond=0
            )
        # The database part alone, once more with other dates, and Django's bulk_update
        # for comparison.
        later = [(c.pk, now + timedelta(days=4000, seconds=i)) for i, c in enumerate(copies)]
        timed(
            f"the UPDATE alone ({args.count} rows, write_locked_until)",
            lambda: write_locked_until(later),
        )
        assert BackupCopy.objects.get(pk=copies[7].pk).locked_until == later[7][1]
        objs = [BackupCopy(pk=pk, locked_until=until) for pk, until in later]
        timed(
            "  the same with bulk_update (batches of 1000), for comparison",
            lambda: BackupCopy.objects.bulk_update(objs, ["locked_until"], batch_size=1000),
        )
        environment.delete()
        destination.delete()
        organisation.delete()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
