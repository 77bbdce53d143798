"""Benchmark: ``GET /api/audit-events`` over 100,000 events (or --events N), and the purge.

Creates a throwaway test database (Django's test database of the settings in use: a SQLite
file, or ``test_<name>`` of DATABASE_URL on PostgreSQL), fills two organisations' logs
(the other organisation holds a quarter), then times pages through the Django test client
(in-process: auth, routing, queries, serialization) unfiltered, by action family, by actor
and deep (offset 50,000), counts their queries, and times purging the older half (about). The
database is dropped at the end.

Run:  DJANGO_SETTINGS_MODULE=config.settings.test .venv/bin/python bench/bench_audit.py
      (add DATABASE_URL=postgres://postgres@127.0.0.1:5432/<name> for PostgreSQL)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

ACTIONS = ["auth.login", "backup.trigger", "backup.delete", "restore.request", "schedule.update"]


def fill(events: int):
    from django.utils import timezone

    from audit.models import AuditEvent
    from organizations.models import Organisation

    mine = Organisation.objects.create(name="Bench", slug="bench")
    other = Organisation.objects.create(name="Other", slug="other")
    now = timezone.now()
    rows = [
        AuditEvent(
            organisation=other if i % 4 == 0 else mine,
            at=now - timedelta(minutes=i),
            actor_type="user",
            actor_name=f"user{i % 50}",
            action=ACTIONS[i % len(ACTIONS)],
            object_type="backup",
            object_id=str(i),
            object_name=f"backup-{i}",
            ip="203.0.113.9",
            details={"kind": "database", "n": i},
        )
        for i in range(events)
    ]
    AuditEvent.objects.bulk_create(rows, batch_size=5000)
    return mine, now


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from audit.services import audit_events_purge
    from organizations.services import api_token_create

    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        started = time.perf_counter()
        organisation, now = fill(args.events)
        print(f"{args.events} events written in {time.perf_counter() - started:.1f} s")
        _, raw = api_token_create(organisation=organisation, name="bench", role="admin")
        client = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {raw}")
        cases = {
            "newest 50": {},
            "100, action=backup.*": {"action": "backup.*", "limit": 100},
            "100, actor=user7": {"actor": "user7", "limit": 100},
            "50 at offset 50000": {"offset": 50_000},
        }
        for label, params in cases.items():
            walls, cpus = [], []
            for _ in range(args.repeat):
                wall, cpu = time.perf_counter(), time.process_time()
                with CaptureQueriesContext(connection) as queries:
                    response = client.get("/api/audit-events", params)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
                assert response.status_code == 200, response.content
            print(
                f"{label:>24}: {statistics.median(walls) * 1000:7.1f} ms wall, "
                f"{statistics.median(cpus) * 1000:7.1f} ms CPU, {len(queries)} queries, "
                f"count {response.json()['count']}"
            )
        wall = time.perf_counter()
        # One event a minute: the older half is older than events / 2 minutes.
        purged = audit_events_purge(now=now, days=max(1, args.events // 2880))
        print(f"purge: {purged} events in {time.perf_counter() - wall:.2f} s")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
